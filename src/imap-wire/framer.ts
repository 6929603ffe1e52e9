/**
 * imap-wire owns where every IMAP command a client sends begins and ends: command lines,
 * the literals announced at their ends (`{N}` synchronizing, `{N+}` LITERAL+, RFC 3501
 * §4.3, RFC 7888), the single raw line that ends IDLE or answers an AUTHENTICATE
 * challenge, and the limits. The proxy's client relay (src/imap/client-relay.ts), its
 * pre-login reader (src/imap/preauth.ts) and the embedded store's input
 * (src/store/imap/input.ts) all frame with this one class, so bytes one of them takes
 * as a literal are never read as a command by another (docs/threat-model.md, "Limits").
 *
 * Pure (no I/O), incremental (push chunks, pull events), bounded (a line never holds
 * more than `maxLineLength` bytes; literal data is handed out as it arrives, never
 * held) and linear (every byte is scanned once; chunks are never re-concatenated).
 */

export interface FramerLimits {
  /** Longest line, without its CRLF. A longer one is an error, never forwarded or run. */
  maxLineLength: number;
  /** Largest literal the caller will take. */
  maxLiteralSize: number;
}

export interface LiteralAnnouncement {
  size: number;
  /** `{N}`: the client waits for `+`. `{N+}`: the data follows at once. */
  sync: boolean;
}

export type FrameEvent =
  /**
   * One line of a command, without CRLF. `first`: it starts a command (else it continues
   * one after a literal). With `literal` set the framer waits for `accept()` or
   * `refuse()` before it reads on.
   */
  | {
      type: 'line';
      line: Buffer;
      first: boolean;
      tag: string | null;
      literal: LiteralAnnouncement | null;
    }
  /** A piece of literal data (a view of the pushed chunk, not a copy). */
  | { type: 'literal'; data: Buffer; last: boolean }
  /** The one line asked for with `expectLine()` (IDLE's DONE, an AUTHENTICATE response). */
  | { type: 'raw-line'; line: Buffer }
  /**
   * A line over `maxLineLength`, read to its end and dropped. `resync`: the next byte
   * starts a command. False when the line continued a command (part of it is gone) or
   * announced a LITERAL+ whose data is on its way: the connection must close.
   */
  | { type: 'too-long'; tag: string | null; resync: boolean }
  /**
   * A literal over `maxLiteralSize`. A synchronizing one is refused before the client
   * sends it (the next byte starts a command); after a LITERAL+ one the framer stops.
   */
  | { type: 'literal-too-large'; line: Buffer; tag: string | null; literal: LiteralAnnouncement };

const LITERAL_AT_END = /\{(\d{1,20})(\+?)\}$/;
const TAG = /^([!#$&'+,\-./0-9:;<=>?@A-Z[\]^_`a-z|}~]+) /;
const KEEP = 32;

export function literalAtEnd(line: Buffer): LiteralAnnouncement | null {
  const m = LITERAL_AT_END.exec(line.toString('latin1', Math.max(0, line.length - 24)));
  return m === null ? null : { size: Number(m[1]), sync: m[2] !== '+' };
}

export function tagOf(line: Buffer): string | null {
  const m = TAG.exec(line.toString('latin1', 0, 80));
  return m === null || m[1]!.includes('+') ? null : m[1]!;
}

type Mode = 'line' | 'raw-line' | 'decide' | 'literal' | 'dead';

export class CommandFramer {
  private chunks: Buffer[] = [];
  private offset = 0;
  private queued = 0;
  private mode: Mode = 'line';
  /** The next line starts a command. */
  private first = true;
  private tag: string | null = null;
  private parts: Buffer[] = [];
  private partLength = 0;
  /** Set once the line being read is over the cap: only its ends are kept. */
  private overflow: { head: Buffer; tail: Buffer } | null = null;
  private announced: LiteralAnnouncement | null = null;
  private remaining = 0;

  constructor(private readonly limits: FramerLimits) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.mode === 'dead') return;
    this.chunks.push(chunk);
    this.queued += chunk.length;
  }

  /** Bytes held: queued input plus the part of a line read so far. */
  get pending(): number {
    return this.queued + this.partLength;
  }

  /** At a command boundary with nothing held (for a hand-over such as STARTTLS). */
  get idle(): boolean {
    return this.mode === 'line' && this.first && this.partLength === 0 && this.overflow === null;
  }

  /** The line being read is already over the cap (its end has not come yet). */
  get overLong(): boolean {
    return this.overflow !== null;
  }

  /** Stopped for good: a LITERAL+ over the limit or a line that cannot be resynchronised. */
  get dead(): boolean {
    return this.mode === 'dead';
  }

  /** The next line, whatever it holds, is one raw line (IDLE, AUTHENTICATE). */
  expectLine(): void {
    if (this.mode !== 'line' || !this.first) throw new Error('expectLine() only between commands');
    this.mode = 'raw-line';
  }

  /** Read the literal announced by the last line (after `+` for a synchronizing one). */
  accept(): void {
    if (this.mode !== 'decide') throw new Error('no literal announced');
    this.remaining = this.announced!.size;
    this.mode = this.remaining === 0 ? 'line' : 'literal';
  }

  /**
   * The announced literal is refused: for a synchronizing one the client will not send
   * it and the next byte starts a command; after a LITERAL+ one the framer stops.
   */
  refuse(): void {
    if (this.mode !== 'decide') throw new Error('no literal announced');
    this.mode = this.announced!.sync ? 'line' : 'dead';
    this.first = true;
  }

  /** Everything queued and not yet framed; the framer is then empty. */
  takeRest(): Buffer {
    const rest = this.chunks.map((c, i) => (i === 0 ? c.subarray(this.offset) : c));
    this.chunks = [];
    this.offset = 0;
    this.queued = 0;
    return rest.length === 1 ? rest[0]! : Buffer.concat(rest);
  }

  next(): FrameEvent | null {
    for (;;) {
      if (this.mode === 'dead' || this.mode === 'decide') return null;
      const chunk = this.chunks[0];
      if (chunk === undefined) return null;
      if (this.mode === 'literal') {
        const take = Math.min(this.remaining, chunk.length - this.offset);
        const data = chunk.subarray(this.offset, this.offset + take);
        this.consume(take);
        this.remaining -= take;
        if (this.remaining === 0) this.mode = 'line';
        return { type: 'literal', data, last: this.remaining === 0 };
      }
      const lf = chunk.indexOf(10, this.offset);
      const end = lf === -1 ? chunk.length : lf + 1;
      this.addPart(chunk.subarray(this.offset, end));
      this.consume(end - this.offset);
      if (lf !== -1) return this.finishLine();
    }
  }

  private consume(n: number): void {
    this.offset += n;
    this.queued -= n;
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  private addPart(piece: Buffer): void {
    if (this.overflow !== null) {
      this.overflow.tail = keepTail(this.overflow.tail, piece);
      return;
    }
    this.parts.push(piece);
    this.partLength += piece.length;
    // +2: the CRLF, which does not count towards the line.
    if (this.partLength > this.limits.maxLineLength + 2) {
      const whole = Buffer.concat(this.parts);
      this.overflow = {
        head: Buffer.from(whole.subarray(0, 80)),
        tail: Buffer.from(whole.subarray(-KEEP)),
      };
      this.parts = [];
      this.partLength = 0;
    }
  }

  private finishLine(): FrameEvent {
    const overflow = this.overflow;
    const raw = overflow === null ? joinParts(this.parts, this.partLength) : null;
    this.parts = [];
    this.partLength = 0;
    this.overflow = null;
    const line = raw === null ? null : stripEol(raw);
    if (line === null || line.length > this.limits.maxLineLength) {
      const head = overflow?.head ?? line!;
      const tail = stripEol(overflow?.tail ?? line!);
      return this.tooLong(head, tail);
    }
    if (this.mode === 'raw-line') {
      this.mode = 'line';
      return { type: 'raw-line', line };
    }
    const first = this.first;
    if (first) this.tag = tagOf(line);
    const literal = literalAtEnd(line);
    if (literal === null) {
      this.first = true;
      return { type: 'line', line, first, tag: this.tag, literal: null };
    }
    if (literal.size > this.limits.maxLiteralSize) {
      this.first = true;
      if (!literal.sync) this.mode = 'dead';
      return { type: 'literal-too-large', line, tag: this.tag, literal };
    }
    this.first = false;
    this.announced = literal;
    this.mode = 'decide';
    return { type: 'line', line, first, tag: this.tag, literal };
  }

  private tooLong(head: Buffer, tail: Buffer): FrameEvent {
    if (this.mode === 'raw-line') {
      // IDLE and AUTHENTICATE read one line and no literal: the next line is a command.
      this.mode = 'line';
      return { type: 'too-long', tag: null, resync: true };
    }
    const tag = this.first ? tagOf(head) : this.tag;
    const literal = literalAtEnd(tail);
    const resync = this.first && (literal === null || literal.sync);
    this.first = true;
    if (!resync) this.mode = 'dead';
    return { type: 'too-long', tag, resync };
  }
}

function keepTail(tail: Buffer, piece: Buffer): Buffer {
  if (piece.length >= KEEP) return Buffer.from(piece.subarray(-KEEP));
  return Buffer.concat([tail, piece]).subarray(-KEEP);
}

function joinParts(parts: Buffer[], length: number): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}

function stripEol(raw: Buffer): Buffer {
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 10) end--;
  if (end > 0 && raw[end - 1] === 13) end--;
  return raw.subarray(0, end);
}
