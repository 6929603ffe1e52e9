import type { Duplex } from 'node:stream';

export interface InputLimits {
  /** Longest command line (without literals), bytes. */
  maxLineLength: number;
  /** Largest single literal (APPEND message), bytes. */
  maxLiteralSize: number;
  /** Largest whole command, lines and literals together, bytes. */
  maxCommandSize: number;
}

export type InputResult =
  | { kind: 'command'; bytes: Buffer }
  | { kind: 'line-too-long' }
  /** A literal over the limit; for a synchronizing one its data was never sent. */
  | { kind: 'literal-too-large'; line: Buffer; nonSync: boolean }
  | { kind: 'end' };

const PAUSE_AT = 1024 * 1024;
const LITERAL_AT_END = /\{(\d{1,20})(\+?)\}$/;

/**
 * Reads commands off the socket: lines, and the literals announced at their ends
 * (sending the `+` continuation for synchronizing ones, RFC 3501 §7.5, and none for
 * LITERAL+). Limits are checked before any literal byte is read, so an oversized
 * synchronizing literal is refused without the client sending it.
 */
export class CommandInput {
  private head: Buffer = Buffer.alloc(0);
  private literal: { target: Buffer; filled: number } | null = null;
  private wake: (() => void) | null = null;
  private ended = false;
  private discarding = false;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  constructor(
    private socket: Duplex,
    private readonly limits: InputLimits,
    private readonly continuation: () => Promise<void>,
  ) {
    this.listen();
  }

  /** After STARTTLS: read from the TLS socket; anything the client pipelined in clear is dropped (RFC 3501 §6.2.1). */
  replaceSocket(socket: Duplex): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.head = Buffer.alloc(0);
    this.socket = socket;
    this.listen();
  }

  private listen(): void {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onEnd);
  }

  /** Stops listening: the socket is being handed over (STARTTLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
  }

  private receive(chunk: Buffer): void {
    const lit = this.literal;
    if (lit !== null) {
      const n = Math.min(chunk.length, lit.target.length - lit.filled);
      chunk.copy(lit.target, lit.filled, 0, n);
      lit.filled += n;
      if (n < chunk.length) this.head = Buffer.concat([this.head, chunk.subarray(n)]);
    } else this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (this.head.length > PAUSE_AT) this.socket.pause();
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    if (this.socket.isPaused()) this.socket.resume();
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    return true;
  }

  /** One line without CRLF; 'too-long' after discarding the rest of an over-long line. */
  async readLine(): Promise<Buffer | 'too-long' | null> {
    for (;;) {
      const lf = this.head.indexOf(0x0a);
      if (lf >= 0) {
        const end = lf > 0 && this.head[lf - 1] === 0x0d ? lf - 1 : lf;
        const line = this.head.subarray(0, end);
        this.head = this.head.subarray(lf + 1);
        if (this.discarding) {
          this.discarding = false;
          return 'too-long';
        }
        return line.length > this.limits.maxLineLength ? 'too-long' : line;
      }
      if (this.head.length > this.limits.maxLineLength) {
        this.discarding = true;
        this.head = Buffer.alloc(0);
      }
      if (!(await this.more())) return null;
    }
  }

  private async readBytes(n: number): Promise<Buffer | null> {
    const target = Buffer.allocUnsafe(n);
    const take = Math.min(n, this.head.length);
    this.head.copy(target, 0, 0, take);
    this.head = this.head.subarray(take);
    this.literal = { target, filled: take };
    try {
      while (this.literal.filled < n) if (!(await this.more())) return null;
      return target;
    } finally {
      this.literal = null;
    }
  }

  async readCommand(): Promise<InputResult> {
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const line = await this.readLine();
      if (line === null) return { kind: 'end' };
      if (line === 'too-long') return { kind: 'line-too-long' };
      parts.push(line);
      total += line.length;
      const m = LITERAL_AT_END.exec(line.toString('latin1', Math.max(0, line.length - 24)));
      if (m === null)
        return { kind: 'command', bytes: parts.length === 1 ? line : Buffer.concat(parts) };
      const size = Number(m[1]);
      const nonSync = m[2] === '+';
      if (size > this.limits.maxLiteralSize || total + size > this.limits.maxCommandSize) {
        return { kind: 'literal-too-large', line: Buffer.concat(parts), nonSync };
      }
      if (!nonSync) await this.continuation();
      const data = await this.readBytes(size);
      if (data === null) return { kind: 'end' };
      parts.push(Buffer.from('\r\n'), data);
      total += size + 2;
    }
  }
}
