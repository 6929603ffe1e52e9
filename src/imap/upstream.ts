/**
 * The proxy's own side of the mail store: connect (TLS or plain), read the greeting, log
 * in as the user with the master credential (SASL PLAIN, authzid = user, authcid =
 * master), and run the few commands the proxy itself needs (CAPABILITY; on the side
 * connection EXAMINE and UID FETCH of a body prefix). After login the main connection is
 * handed to the relay with whatever bytes were read past the login reply.
 *
 * A small hand-written client, because the relay needs the raw socket afterwards and
 * imapflow (the one kept Node client) owns its socket and is a dev-only dependency here.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { UnavailableError } from './errors.js';

export interface UpstreamOptions {
  host: string;
  port: number;
  /** true: implicit TLS; an object: TLS with these options (e.g. a CA for a test store). */
  tls: boolean | ConnectionOptions;
  /** Connect + greeting + login must finish within this (default 10 s). */
  timeoutMs?: number;
}

export interface MasterCredential {
  user: string;
  password: string;
}

export interface Response {
  /** The response line(s), literals replaced by their `{n}` markers. */
  text: string;
  literals: Buffer[];
}

/** Reads of a plain upstream socket land in buffers of this size (Node's own read size). */
const READ_SIZE = 64 * 1024;
/** A read shorter than this is copied out, and its buffer kept for the next read. */
const COPY_BELOW = 4 * 1024;

/**
 * Where a socket's input goes: the setup phase's Reader, then the relay (`sink`).
 *
 * A plain TCP socket is read with `onread` (net.connect): each read lands in a buffer
 * handed straight to `sink`, without the Readable stream's queue and 'data' events. A
 * long read's buffer goes with its bytes (the relay writes views of it to the client)
 * until the reader gives it back (`recycle`); a short read (a response line) is copied
 * out, so that no small chunk pins 64 KiB. Side by side, relaying 100 MB: a `pipe`
 * relay ~180 ms CPU, `onread` into a new buffer per read ~150–190 ms, `onread` into one
 * reused buffer ~80 ms (fresh buffers cost page faults and garbage collection).
 * node:tls has no `onread`: a TLS socket's 'data' events go to the same sink.
 */
export class SocketInput {
  private early: Buffer[] = [];
  /** Until the first reader takes the input, reads wait here. */
  private sink: (chunk: Buffer) => void = (chunk) => this.early.push(chunk);
  private spare: Buffer | null = null;
  /** The buffer of the last long read, handed over with its bytes. */
  private lent: Buffer | null = null;
  private allocatedCount = 0;
  /** The spare buffer is one that long reads filled (recycled). */
  private filled = false;

  /** Sends every read from now on to `sink`, first any that came before. */
  to(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const chunk of early) sink(chunk);
  }

  /** A TLS socket's 'data' event. */
  readonly data = (chunk: Buffer): void => this.sink(chunk);

  /** The `onread` option of net.connect for a plain socket. */
  readonly onread = {
    buffer: (): Buffer => {
      if (this.spare === null) {
        this.spare = Buffer.allocUnsafeSlow(READ_SIZE);
        this.allocatedCount++;
      }
      return this.spare;
    },
    callback: (length: number, buffer: Buffer): boolean => {
      let chunk: Buffer;
      if (length < COPY_BELOW) {
        chunk = Buffer.from(buffer.subarray(0, length));
        // A short read ends a burst: a buffer that long reads filled would stay resident
        // while the session idles, so the next read gets a new one (untouched pages).
        if (this.filled) {
          this.spare = null;
          this.filled = false;
        }
      } else {
        chunk = buffer.subarray(0, length);
        this.lent = buffer;
        this.spare = null;
      }
      this.sink(chunk);
      return true;
    },
  };

  /**
   * The reader is done with `chunk` and nothing refers to it any more (the relay wrote it
   * and the client socket took every byte at once): the next read may reuse its buffer,
   * so a relay that keeps up reads into one buffer throughout.
   */
  recycle(chunk: Uint8Array): void {
    if (this.lent === null || chunk.buffer !== this.lent.buffer) return;
    if (this.spare === null) {
      this.spare = this.lent;
      this.filled = true;
    }
    this.lent = null;
  }

  /** Read buffers allocated so far (the relay's tests read it). */
  get allocated(): number {
    return this.allocatedCount;
  }
}

/** Buffers socket input so the setup phase can read whole lines and literals. */
class Reader {
  private buffer: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.wake?.();
  };
  private readonly onEnd = (error?: Error): void => {
    this.failure ??= error ?? new Error('upstream closed the connection');
    this.wake?.();
  };

  constructor(
    private readonly socket: Socket,
    private readonly input: SocketInput,
  ) {
    input.to(this.onData);
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', (error) => this.onEnd(error));
  }

  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.failure !== null) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  async line(): Promise<string> {
    await this.waitFor(() => this.buffer.includes(10));
    const end = this.buffer.indexOf(10);
    const line = this.buffer.toString('latin1', 0, end).replace(/\r$/, '');
    this.buffer = this.buffer.subarray(end + 1);
    return line;
  }

  async bytes(length: number): Promise<Buffer> {
    await this.waitFor(() => this.buffer.length >= length);
    const out = Buffer.from(this.buffer.subarray(0, length));
    this.buffer = this.buffer.subarray(length);
    return out;
  }

  async response(maxLiteral: number): Promise<Response> {
    let text = await this.line();
    const literals: Buffer[] = [];
    for (
      let match = /\{(\d{1,10})\}$/.exec(text);
      match !== null;
      match = /\{(\d{1,10})\}$/.exec(text)
    ) {
      const length = Number(match[1]);
      if (length > maxLiteral)
        throw new Error(`upstream literal of ${length} bytes exceeds ${maxLiteral}`);
      literals.push(await this.bytes(length));
      text += await this.line();
    }
    return { text, literals };
  }

  /** Stops reading: input goes to `sink`; returns bytes already received but not consumed. */
  detach(sink: (chunk: Buffer) => void): Buffer {
    this.socket.removeAllListeners('end');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.on('error', () => undefined);
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    this.input.to(sink);
    return rest;
  }
}

export class UpstreamConnection {
  private tagCounter = 0;
  capabilities: string[] = [];

  private constructor(
    readonly socket: Socket,
    private readonly reader: Reader,
    private readonly input: SocketInput,
  ) {}

  /** Connects and logs in as `address`; throws UnavailableError on any failure. */
  static async open(
    options: UpstreamOptions,
    master: MasterCredential,
    address: string,
  ): Promise<UpstreamConnection> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const input = new SocketInput();
    const socket = await connectSocket(options, timeoutMs, input);
    const connection = new UpstreamConnection(socket, new Reader(socket, input), input);
    const timer = setTimeout(
      () => socket.destroy(new Error('upstream login timed out')),
      timeoutMs,
    );
    try {
      const greeting = await connection.reader.line();
      if (!/^\* OK\b/i.test(greeting)) throw new Error('upstream greeting is not OK');
      connection.capabilities = capabilityCode(greeting) ?? [];
      await connection.login(master, address);
      return connection;
    } catch (error) {
      socket.destroy();
      if (error instanceof UnavailableError) throw error;
      throw new UnavailableError(`upstream login failed: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private async login(master: MasterCredential, address: string): Promise<void> {
    const credential = Buffer.from(
      `${address}\0${master.user}\0${master.password}`,
      'utf8',
    ).toString('base64');
    const tag = this.nextTag();
    if (this.capabilities.some((c) => c.toUpperCase() === 'SASL-IR')) {
      this.socket.write(`${tag} AUTHENTICATE PLAIN ${credential}\r\n`);
    } else {
      this.socket.write(`${tag} AUTHENTICATE PLAIN\r\n`);
      const challenge = await this.reader.line();
      if (!challenge.startsWith('+')) throw new Error('upstream refused SASL PLAIN');
      this.socket.write(`${credential}\r\n`);
    }
    const result = await this.untilTagged(tag, 0);
    if (!/^OK\b/i.test(result.status))
      throw new UnavailableError('upstream refused the master login');
    this.capabilities = capabilityCode(result.status) ?? (await this.fetchCapabilities());
  }

  private async fetchCapabilities(): Promise<string[]> {
    const { untagged } = await this.command('CAPABILITY');
    const line = untagged.find((r) => /^\* CAPABILITY /i.test(r.text));
    return line === undefined ? [] : line.text.slice('* CAPABILITY '.length).trim().split(/ +/);
  }

  private nextTag(): string {
    this.tagCounter += 1;
    return `rg${this.tagCounter}`;
  }

  private async untilTagged(
    tag: string,
    maxLiteral: number,
  ): Promise<{ untagged: Response[]; status: string }> {
    const untagged: Response[] = [];
    for (;;) {
      const response = await this.reader.response(maxLiteral);
      if (response.text.startsWith(`${tag} `))
        return { untagged, status: response.text.slice(tag.length + 1) };
      untagged.push(response);
    }
  }

  /** Runs one command; `status` is the tagged reply without its tag ("OK …", "NO …"). */
  async command(text: string, maxLiteral = 0): Promise<{ untagged: Response[]; status: string }> {
    const tag = this.nextTag();
    this.socket.write(`${tag} ${text}\r\n`);
    return this.untilTagged(tag, maxLiteral);
  }

  /**
   * Hands the socket to the relay: every read from now on goes to `sink` (pause and
   * resume the socket for backpressure); returns the bytes read ahead.
   */
  detach(sink: (chunk: Buffer) => void): Buffer {
    return this.reader.detach(sink);
  }

  /** See SocketInput.recycle. */
  recycle(chunk: Uint8Array): void {
    this.input.recycle(chunk);
  }

  close(): void {
    this.socket.destroy();
  }
}

function capabilityCode(line: string): string[] | undefined {
  const match = /\[CAPABILITY ([^\]]*)\]/i.exec(line);
  return match === null ? undefined : (match[1] ?? '').trim().split(/ +/);
}

function connectSocket(
  options: UpstreamOptions,
  timeoutMs: number,
  input: SocketInput,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const tlsOptions = typeof options.tls === 'object' ? options.tls : {};
    let socket: Socket;
    if (options.tls) {
      socket = tlsConnect({
        host: options.host,
        port: options.port,
        servername: options.host,
        ...tlsOptions,
      });
      socket.on('data', input.data);
    } else {
      socket = netConnect({ host: options.host, port: options.port, onread: input.onread });
    }
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(
        new UnavailableError(
          `upstream ${options.host}:${options.port} unreachable: ${error.message}`,
          { cause: error },
        ),
      );
    };
    socket.once('error', fail);
    socket.once(options.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Quotes a mailbox name for a command; null when it cannot be a quoted string. */
export function quoteMailbox(name: string): string | null {
  if (/[\r\n\0]/.test(name)) return null;
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
