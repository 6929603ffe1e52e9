import type { Duplex } from 'node:stream';

/**
 * Queued bytes that make a write. 256 KiB (was 64): a FETCH BODY[] of 20 KB messages then
 * makes one writev per dozen messages instead of per three; the bound on a session's
 * memory is MAX_BUFFERED below, which this stays under.
 */
const FLUSH_AT = 256 * 1024;
/**
 * Bytes the socket may hold before a writer waits for `drain`. Above the stream's own
 * 16 KiB mark: waiting at that mark made a FETCH of a whole mailbox stop after every
 * flush for the client to catch up; this still bounds a session's memory.
 */
const MAX_BUFFERED = 512 * 1024;

/**
 * Writes responses to the socket. Text and small message bodies are batched up to
 * FLUSH_AT and written corked (one writev, not a syscall per message); bodies stay the
 * Buffers storage returned, never concatenated into strings or copied; a flush waits
 * for `drain` when the socket holds MAX_BUFFERED, so a slow client slows the session
 * instead of growing its memory.
 */
export class Output {
  private pending: Array<string | Uint8Array> = [];
  private pendingLength = 0;
  private closed = false;

  constructor(private socket: Duplex) {}

  /** Switches to the TLS socket after STARTTLS. */
  replaceSocket(socket: Duplex): void {
    this.socket = socket;
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** Queues text (must already be CRLF-framed where it ends a response). */
  text(s: string): void {
    this.pending.push(s);
    this.pendingLength += s.length;
  }

  /** Queues one response line, adding CRLF. */
  line(s: string): void {
    this.text(`${s}\r\n`);
  }

  /**
   * Queues `bytes` after the queued text (a small body goes out with its neighbours in
   * one corked write), or writes both now when large, waiting for the socket when needed.
   */
  async bytes(bytes: Uint8Array): Promise<void> {
    if (bytes.length < FLUSH_AT) {
      this.pending.push(bytes);
      this.pendingLength += bytes.length;
      await this.maybeFlush();
      return;
    }
    this.writePending();
    await this.write(bytes);
  }

  /** Writes queued text if there is enough of it to be worth a write. */
  async maybeFlush(): Promise<void> {
    if (this.pendingLength >= FLUSH_AT) await this.flush();
  }

  async flush(): Promise<void> {
    this.writePending();
    if (this.socket.writableLength >= MAX_BUFFERED) await this.drained();
  }

  private writePending(): boolean {
    if (this.pending.length === 0 || this.isClosed) {
      this.pending = [];
      this.pendingLength = 0;
      return true;
    }
    const chunks = mergeText(this.pending);
    this.pending = [];
    this.pendingLength = 0;
    if (chunks.length === 1) return this.socket.write(chunks[0] as string | Uint8Array);
    // one writev for the lot instead of a syscall per message (and per literal)
    this.socket.cork();
    let ok = true;
    for (const chunk of chunks) ok = this.socket.write(chunk);
    this.socket.uncork();
    return ok;
  }

  private async write(bytes: Uint8Array): Promise<void> {
    if (this.isClosed) return;
    this.socket.write(bytes);
    if (this.socket.writableLength >= MAX_BUFFERED) await this.drained();
  }

  private drained(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends what is queued and ends the connection. */
  async end(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.socket.end();
  }
}

/** Joins runs of adjacent strings (one string write each run); Buffers pass through as they are. */
function mergeText(chunks: Array<string | Uint8Array>): Array<string | Uint8Array> {
  const out: Array<string | Uint8Array> = [];
  let text = '';
  for (const chunk of chunks) {
    if (typeof chunk === 'string') {
      text += chunk;
      continue;
    }
    if (text !== '') out.push(text);
    text = '';
    out.push(chunk);
  }
  if (text !== '') out.push(text);
  return out;
}
