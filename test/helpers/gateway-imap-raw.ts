/**
 * A deliberately small IMAP client over TLS that sees the wire: it fetches whole
 * messages (`BODY.PEEK[]`) one after another and reports, for each fetch, whether the
 * literal arrived complete. A library client would turn a literal cut short into a
 * generic error; the shutdown test needs to tell "cut mid-literal" from "refused".
 */
import { connect, type TLSSocket } from 'node:tls';

export interface FetchLoopResult {
  /** Fetches whose literal arrived in full, then the tagged OK. */
  complete: number;
  /** Fetches whose literal started but the connection ended before all its bytes came. */
  truncated: number;
  /** Bytes of literals that arrived in full. */
  bytes: number;
}

export class RawImap {
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  private tag = 0;

  private constructor(private readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    const end = () => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  static async open(port: number, ca: string): Promise<RawImap> {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const client = new RawImap(socket);
    await client.line();
    return client;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private async waitFor<T>(take: () => T | undefined): Promise<T | undefined> {
    for (;;) {
      const value = take();
      if (value !== undefined) return value;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The next line (without CRLF), or undefined when the connection ended first. */
  line(): Promise<string | undefined> {
    return this.waitFor(() => {
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) return undefined;
      const text = this.buffer.subarray(0, end).toString('latin1');
      this.buffer = this.buffer.subarray(end + 2);
      return text;
    });
  }

  bytes(count: number): Promise<Buffer | undefined> {
    return this.waitFor(() => {
      if (this.buffer.length < count) return undefined;
      const taken = this.buffer.subarray(0, count);
      this.buffer = this.buffer.subarray(count);
      return taken;
    });
  }

  /** Sends a command and reads to its tagged reply; undefined if the connection ended. */
  async command(text: string): Promise<string | undefined> {
    const tag = `t${++this.tag}`;
    this.socket.write(`${tag} ${text}\r\n`);
    for (;;) {
      const line = await this.line();
      if (line === undefined) return undefined;
      if (line.startsWith(`${tag} `)) return line;
    }
  }

  /**
   * Fetches messages 1..count round-robin until `stop()` is true or the server ends the
   * connection; counts complete and truncated literals.
   */
  async fetchLoop(count: number, stop: () => boolean): Promise<FetchLoopResult> {
    const result: FetchLoopResult = { complete: 0, truncated: 0, bytes: 0 };
    for (let i = 0; !stop() && !this.ended; i++) {
      const tag = `t${++this.tag}`;
      this.socket.write(`${tag} FETCH ${(i % count) + 1} (BODY.PEEK[])\r\n`);
      for (;;) {
        const line = await this.line();
        if (line === undefined) return result;
        const literal = /\{(\d+)\}$/.exec(line);
        if (literal) {
          const size = Number(literal[1]);
          const body = await this.bytes(size);
          if (body === undefined) {
            result.truncated++;
            return result;
          }
          result.complete++;
          result.bytes += size;
          continue;
        }
        if (line.startsWith(`${tag} `)) break;
      }
    }
    return result;
  }

  close(): void {
    this.socket.destroy();
  }
}
