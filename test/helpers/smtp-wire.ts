/**
 * A raw SMTP conversation over a TCP socket, for tests that must send what no well-behaved
 * client sends (bare LF, NUL, overlong lines, broken dot-stuffing). It reads whole replies
 * (all lines of a multi-line reply) in order.
 */
import { type Socket, connect } from 'node:net';

export class SmtpWire {
  private buffer = '';
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: another loopback source (127.0.0.2, …) to look like another client. */
  static async open(port: number, localAddress?: string): Promise<SmtpWire> {
    const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new SmtpWire(socket);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next complete reply, lines joined with "\n"; '' if the server closed first. */
  async reply(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)/.exec(this.buffer);
      if (match !== null) {
        this.buffer = this.buffer.slice(match[1]!.length);
        return match[1]!.trimEnd().replace(/\r\n/g, '\n');
      }
      if (this.closed) return '';
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no SMTP reply within ${timeoutMs} ms; buffer: ${JSON.stringify(this.buffer.slice(0, 200))}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string | Buffer): Promise<string> {
    this.write(
      typeof line === 'string' ? `${line}\r\n` : Buffer.concat([line, Buffer.from('\r\n')]),
    );
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}
