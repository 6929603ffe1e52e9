import type { Duplex } from 'node:stream';
import { CommandFramer, type FrameEvent } from '../../imap-wire/framer.js';

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
  /** `resync` false: the stream cannot be resynchronised (the connection must close). */
  | { kind: 'line-too-long'; tag: string | null; resync: boolean }
  /** A literal over the limit; for a synchronizing one its data was never sent. */
  | { kind: 'literal-too-large'; line: Buffer; tag: string | null; nonSync: boolean }
  | { kind: 'end' };

const PAUSE_AT = 1024 * 1024;
const CRLF = Buffer.from('\r\n');

/**
 * Reads commands off the socket with the shared framer (src/imap-wire/framer.ts, the
 * same one the proxy frames with): lines, and the literals announced at their ends
 * (sending the `+` continuation for synchronizing ones, RFC 3501 §7.5, and none for
 * LITERAL+). Limits are checked before any literal byte is read, so an oversized
 * synchronizing literal is refused without the client sending it.
 */
export class CommandInput {
  private framer: CommandFramer;
  private wake: (() => void) | null = null;
  private ended = false;
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
    this.framer = new CommandFramer(limits);
    this.listen();
  }

  /** After STARTTLS: read from the TLS socket; anything the client pipelined in clear is dropped (RFC 3501 §6.2.1). */
  replaceSocket(socket: Duplex): void {
    this.detach();
    this.framer = new CommandFramer(this.limits);
    this.socket = socket;
    this.listen();
  }

  private listen(): void {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onEnd);
  }

  /** Reads nothing more: the server ended the session (a backend's `bye` event, session.ts). */
  stop(): void {
    this.onEnd();
  }

  /** Stops listening: the socket is being handed over (STARTTLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
  }

  private receive(chunk: Buffer): void {
    this.framer.push(chunk);
    if (this.framer.pending > PAUSE_AT) this.socket.pause();
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async event(): Promise<FrameEvent | null> {
    for (;;) {
      const event = this.framer.next();
      if (event !== null) return event;
      if (this.ended || this.framer.dead) return null;
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** One raw line without CRLF (IDLE's DONE, an AUTHENTICATE response), or 'too-long'. */
  async readLine(): Promise<Buffer | 'too-long' | null> {
    this.framer.expectLine();
    const event = await this.event();
    if (event === null) return null;
    if (event.type === 'raw-line') return event.line;
    return 'too-long';
  }

  async readCommand(): Promise<InputResult> {
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const event = await this.event();
      if (event === null) return { kind: 'end' };
      if (event.type === 'too-long')
        return { kind: 'line-too-long', tag: event.tag, resync: event.resync };
      if (event.type === 'literal-too-large') {
        parts.push(event.line);
        const line = Buffer.concat(parts);
        return { kind: 'literal-too-large', line, tag: event.tag, nonSync: !event.literal.sync };
      }
      if (event.type !== 'line') throw new Error(`unexpected ${event.type}`);
      parts.push(event.line);
      total += event.line.length;
      const literal = event.literal;
      if (literal === null) return { kind: 'command', bytes: joined(parts) };
      if (total + literal.size > this.limits.maxCommandSize) {
        this.framer.refuse();
        return {
          kind: 'literal-too-large',
          line: joined(parts),
          tag: event.tag,
          nonSync: !literal.sync,
        };
      }
      if (literal.sync) await this.continuation();
      this.framer.accept();
      const data = await this.readLiteral(literal.size);
      if (data === null) return { kind: 'end' };
      parts.push(CRLF, data);
      total += literal.size + 2;
    }
  }

  private async readLiteral(size: number): Promise<Buffer | null> {
    const target = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const event = await this.event();
      if (event === null) return null;
      if (event.type !== 'literal') throw new Error(`unexpected ${event.type}`);
      event.data.copy(target, filled);
      filled += event.data.length;
    }
    return target;
  }
}

function joined(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
