/**
 * smtp-server's DATA parser, made to jump from line start to line start. Its
 * `_feedDataStream` looks at every byte of a message in JavaScript and copies every socket
 * chunk once more (Buffer.concat with the four bytes it held back): for a 50 MB message
 * that is the largest item of the MX's event loop and of the embedded store's LMTP, and
 * the copies add to the garbage collector's work (docs/threat-model.md, "Limits": no
 * message may stall the gateway). smtp-server 3.21.7 is no different.
 *
 * `feedDataStream` below is a replacement with the same results byte for byte —
 * test/smtp-data-stream.test.ts feeds both the same streams at every chunking and
 * compares — including smtp-server's terminator-smuggling guard at the start of DATA and
 * its leniencies (a dot at the second position of a message is not unstuffed; a bare LF
 * before a dot counts as a line start for unstuffing, not for the terminator). It
 * searches "\n." with Buffer.indexOf, removes every escape dot of a chunk in one pass
 * (smtp-server takes one event-loop turn per escape dot), and keeps the four held-back
 * bytes apart instead of copying the next chunk behind them.
 *
 * Installed per connection (`FastDataSmtpServer`), not on smtp-server's shared
 * prototype: only the servers that ask for it change.
 */
import type { Duplex, PassThrough } from 'node:stream';
import { SMTPServer } from 'smtp-server';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LF_DOT = Buffer.from('\n.');
const DOT_CRLF = Buffer.from('.\r\n');
/** Bytes held back at the end of a chunk: a terminator may straddle into the next one. */
const HOLD = 4;
/** A held tail in front of a chunk shorter than this is simply copied in front of it. */
const SMALL_CHUNK = 64;
/** More pieces than this (escape dots in one chunk) are joined before they are written. */
const MAX_PIECES = 8;

type Done = (error?: Error | null) => void;

/** The parts of smtp-server's SMTPStream (no exported type) that DATA mode uses. */
export interface DataParser {
  _dataStream: (PassThrough & { byteLength?: number; sizeExceeded?: boolean }) | null;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(length: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: Done): void;
  _feedDataStream(chunk: Buffer, done: Done): void;
}

/** `head` ‖ `chunk` without copying them together. */
class Joined {
  readonly length: number;

  constructor(
    readonly head: Buffer,
    readonly chunk: Buffer,
  ) {
    this.length = head.length + chunk.length;
  }

  at(index: number): number | undefined {
    return index < this.head.length ? this.head[index] : this.chunk[index - this.head.length];
  }

  /** Bytes [from, to) as at most two views, empty ones left out. */
  slice(from: number, to: number, into: Buffer[]): void {
    const h = this.head.length;
    if (from < h) into.push(this.head.subarray(from, Math.min(to, h)));
    if (to > h) into.push(this.chunk.subarray(Math.max(from - h, 0), to - h));
  }

  /** The first line-start dot at `from` or later that can still be judged here (≤ length − 3). */
  nextLineDot(from: number): number {
    const last = this.length - 3;
    const h = this.head.length;
    for (let i = from; i <= Math.min(h, last); i++) {
      if (this.at(i) === DOT && this.at(i - 1) === LF) return i;
    }
    const lf = this.chunk.indexOf(LF_DOT, Math.max(from - h - 1, 0));
    if (lf === -1) return -1;
    const dot = h + lf + 1;
    return dot <= last ? dot : -1;
  }
}

function joinedPieces(pieces: Buffer[]): Buffer[] {
  return pieces.length > MAX_PIECES ? [Buffer.concat(pieces)] : pieces;
}

const byteLength = (pieces: Buffer[]): number =>
  pieces.reduce((sum, piece) => sum + piece.length, 0);

/** SMTPStream#_feedDataStream with the same results (see above); `this` is the parser. */
export function feedDataStream(this: DataParser, input: Buffer, done: Done): void {
  const out = this._dataStream!;
  let head: Buffer = Buffer.alloc(0);
  let chunk = input;
  const held = this._lastBytes;
  this._lastBytes = false;
  if (held && held.length > 0) {
    // At the start of DATA the checks below look at the first bytes together.
    if (this._atDataStart || input.length < SMALL_CHUNK)
      chunk = Buffer.concat([held, input], held.length + input.length);
    else head = held;
  }
  if (this._atDataStart && chunk.length >= 3 && chunk.subarray(0, 3).equals(DOT_CRLF)) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && chunk.length >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
    // The escape dot is consumed: from now on a leading dot is content, never the end.
    chunk = chunk.subarray(1);
    this._atDataStart = false;
  }
  const data = new Joined(head, chunk);
  const pieces: Buffer[] = [];
  // Bytes before `start` are emitted or dropped; candidates begin two bytes into what is
  // left, as smtp-server restarts its scan after an escape dot.
  let start = 0;
  for (let from = 2; ;) {
    const dot = data.nextLineDot(from);
    if (dot === -1) break;
    if (data.at(dot - 2) === CR && data.at(dot + 1) === CR && data.at(dot + 2) === LF) {
      data.slice(start, dot, pieces);
      const content = joinedPieces(pieces);
      this._countDataBytes(byteLength(content));
      const last = content.pop()!;
      if (out.writable) for (const piece of content) out.write(piece);
      this._endDataMode(last, data.chunk.subarray(dot + 3 - data.head.length), done);
      return;
    }
    if (data.at(dot + 1) === DOT) {
      data.slice(start, dot, pieces);
      start = dot + 1;
      from = start + 2;
    } else from = dot + 1;
  }
  // Keep the last bytes for the next chunk (all of them if fewer than HOLD are left).
  const keepFrom = Math.max(start, data.length - HOLD);
  const kept: Buffer[] = [];
  data.slice(keepFrom, data.length, kept);
  this._lastBytes = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
  data.slice(start, keepFrom, pieces);
  const emit = joinedPieces(pieces);
  if (emit.length === 0) {
    done();
    return;
  }
  this._countDataBytes(byteLength(emit));
  if (!out.writable) {
    done();
    return;
  }
  let flowing = true;
  for (const piece of emit) flowing = out.write(piece);
  if (flowing || out.destroyed) {
    done();
    return;
  }
  // A stream that the application destroys never drains, it only closes.
  const resume = (): void => {
    out.removeListener('drain', resume);
    out.removeListener('close', resume);
    done();
  };
  out.once('drain', resume);
  out.once('close', resume);
}

/** The parts of smtp-server's SMTPConnection (no exported type) that hold the parser. */
interface ParserOwner {
  _parser: DataParser | false;
  _createParser(): DataParser & Duplex;
}

/** Gives one connection's parser, and the one it makes after STARTTLS, `feedDataStream`. */
export function useFastDataScan(connection: unknown): void {
  const owner = connection as ParserOwner;
  if (owner._parser) owner._parser._feedDataStream = feedDataStream;
  const create = owner._createParser.bind(owner);
  owner._createParser = () => {
    const parser = create();
    parser._feedDataStream = feedDataStream;
    return parser;
  };
}

/** An SMTPServer whose connections parse DATA with `feedDataStream`. */
export class FastDataSmtpServer extends SMTPServer {
  override connect(...args: Parameters<SMTPServer['connect']>): void {
    super.connect(...args);
    let newest: unknown;
    for (const connection of this.connections) newest = connection;
    if (newest !== undefined) useFastDataScan(newest);
  }
}
