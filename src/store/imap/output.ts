import type { Duplex } from 'node:stream';

const FLUSH_AT = 64 * 1024;

/**
 * Writes responses to the socket. Small text is batched into one write; message bodies
 * are written as the Buffers storage returned, never concatenated into strings; every
 * flush waits for `drain` when the socket's buffer is full, so a slow client slows the
 * session instead of growing its memory.
 */
export class Output {
  private pending: string[] = [];
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

  /** Writes queued text, then `bytes`, waiting for the socket when needed. */
  async bytes(bytes: Uint8Array): Promise<void> {
    this.writeText();
    await this.write(bytes);
  }

  /** Writes queued text if there is enough of it to be worth a write. */
  async maybeFlush(): Promise<void> {
    if (this.pendingLength >= FLUSH_AT) await this.flush();
  }

  async flush(): Promise<void> {
    const ok = this.writeText();
    if (!ok) await this.drained();
  }

  private writeText(): boolean {
    if (this.pending.length === 0 || this.isClosed) {
      this.pending = [];
      this.pendingLength = 0;
      return true;
    }
    const data = this.pending.length === 1 ? (this.pending[0] as string) : this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
    return this.socket.write(data, 'utf8');
  }

  private async write(bytes: Uint8Array): Promise<void> {
    if (this.isClosed) return;
    if (!this.socket.write(bytes)) await this.drained();
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
