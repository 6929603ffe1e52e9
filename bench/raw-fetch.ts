/**
 * A minimal IMAP reader for the proxy bench (bench/proxy.bench.ts): one session that logs
 * in, EXAMINEs a mailbox and times `UID FETCH 1:* (UID BODY.PEEK[])` to its tagged OK,
 * counting the FETCH responses and the bytes of their literals.
 *
 * Why, next to imapflow: a client's cost can depend on how the server cuts its output.
 * imapflow does work per chunk it reads (its parser, a stream per literal), so a server
 * that writes in small pieces (Dovecot) costs it more per byte than one that writes in
 * large buffers (the proxy's relay), and the client, not the server, then sets the time.
 * This reader does almost nothing per byte or per chunk: it scans response lines (capped)
 * and skips literal bytes by arithmetic, so its time is the server's time to deliver.
 * Every read is counted, so the bench can show how each server cuts its output.
 *
 * Bounded: a response line over LINE_CAP fails the session, and a session that does not
 * finish in TIMEOUT_MS fails.
 */
import { createHash, type Hash } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const LINE_CAP = 64 * 1024;
const TIMEOUT_MS = 120_000;
const LITERAL = /\{(\d{1,12})\}\r?$/;

export interface RawFetchResult {
  /** Milliseconds from writing the FETCH to its tagged OK. */
  ms: number;
  /** FETCH responses that carried a literal. */
  messages: number;
  literalBytes: number;
  /** Reads ('data' events) during the FETCH and the bytes they carried. */
  reads: number;
  bytes: number;
  /** SHA-256 of every literal in order, when asked for (untimed passes only). */
  digest?: string;
}

export interface RawFetchOptions {
  port: number;
  /** The login command without its tag: `LOGIN "a" "b"` or `AUTHENTICATE PLAIN <b64>`. */
  login: string;
  mailbox: string;
  hash?: boolean;
}

/** The login for a proxy (plain on loopback): LOGIN with quoted strings. */
export function loginCommand(user: string, password: string): string {
  const quote = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `LOGIN ${quote(user)} ${quote(password)}`;
}

/** Dovecot's master login: SASL PLAIN with authzid = the user (initial response). */
export function masterLoginCommand(user: string, master: string, password: string): string {
  return `AUTHENTICATE PLAIN ${Buffer.from(`${user}\0${master}\0${password}`).toString('base64')}`;
}

class Reader {
  private line: Buffer[] = [];
  private lineLength = 0;
  private literal = 0;
  private waiting: { tag: string; resolve: (line: string) => void } | null = null;
  private failure: Error | null = null;
  private reject: ((error: Error) => void) | null = null;
  messages = 0;
  literalBytes = 0;
  reads = 0;
  bytes = 0;
  hash: Hash | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    const end = (error?: Error): void => this.fail(error ?? new Error('connection closed'));
    socket.on('error', end);
    socket.on('close', () => end());
  }

  /** Resolves with the tagged line of `tag` (untagged lines and literals are consumed). */
  until(tag: string): Promise<string> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { tag, resolve };
      this.reject = reject;
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.reject?.(this.failure);
    this.reject = null;
  }

  private data(chunk: Buffer): void {
    this.reads++;
    this.bytes += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, chunk.length - at);
        this.hash?.update(chunk.subarray(at, at + take));
        this.literal -= take;
        this.literalBytes += take;
        at += take;
        continue;
      }
      const eol = chunk.indexOf(10, at);
      const end = eol === -1 ? chunk.length : eol + 1;
      this.lineLength += end - at;
      if (this.lineLength > LINE_CAP) return this.fail(new Error('response line too long'));
      this.line.push(chunk.subarray(at, end));
      at = end;
      if (eol !== -1) this.lineDone();
    }
  }

  private lineDone(): void {
    const text = Buffer.concat(this.line).toString('latin1', 0, this.lineLength - 1);
    this.line = [];
    this.lineLength = 0;
    const literal = LITERAL.exec(text);
    if (literal !== null) {
      // Only the first line of a response starts with `*`; a FETCH has one body literal.
      if (text.startsWith('* ')) this.messages++;
      this.literal = Number(literal[1]);
      return;
    }
    const waiting = this.waiting;
    if (waiting !== null && text.startsWith(`${waiting.tag} `)) {
      this.waiting = null;
      this.reject = null;
      waiting.resolve(text.replace(/\r$/, ''));
    }
  }
}

async function command(socket: Socket, reader: Reader, tag: string, text: string): Promise<void> {
  const done = reader.until(tag);
  socket.write(`${tag} ${text}\r\n`);
  const line = await done;
  if (!line.startsWith(`${tag} OK`)) throw new Error(`${text.split(' ')[0]}: ${line}`);
}

/** One session: connect, log in and EXAMINE untimed, then the FETCH timed. */
export async function rawFetch(options: RawFetchOptions): Promise<RawFetchResult> {
  const socket = connect({ host: '127.0.0.1', port: options.port });
  const timer = setTimeout(() => socket.destroy(new Error('raw fetch timed out')), TIMEOUT_MS);
  try {
    const reader = new Reader(socket);
    await reader.until('*');
    await command(socket, reader, 'a', options.login);
    await command(socket, reader, 'b', `EXAMINE "${options.mailbox}"`);
    Object.assign(reader, { messages: 0, literalBytes: 0, reads: 0, bytes: 0 });
    if (options.hash === true) reader.hash = createHash('sha256');
    const started = process.hrtime.bigint();
    await command(socket, reader, 'c', 'UID FETCH 1:* (UID BODY.PEEK[])');
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const result: RawFetchResult = {
      ms,
      messages: reader.messages,
      literalBytes: reader.literalBytes,
      reads: reader.reads,
      bytes: reader.bytes,
      ...(reader.hash !== null ? { digest: reader.hash.digest('hex') } : {}),
    };
    await command(socket, reader, 'd', 'LOGOUT').catch(() => undefined);
    return result;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
