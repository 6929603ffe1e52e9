/**
 * The upstream → client half of the relay: a streaming parser of IMAP server output that
 * passes every byte through unchanged except the body literals of untagged FETCH
 * responses, which it hands to a BodyLiteralRewriter (body-literal.ts) to be fed through
 * the recrypt transform (same length, patched in place). This file knows IMAP syntax
 * only: where lines, literals and FETCH items start and end.
 *
 * Hand-written on purpose: the IMAP libraries for Node (imapflow, emailjs-imap-client,
 * node-imap) parse server output into values and re-serialise or discard it; none passes
 * the original bytes through exactly while exposing where each literal starts, and
 * none streams a literal instead of collecting it. The proxy needs both.
 *
 * Memory: a text line is buffered (capped), a FETCH line is tokenised byte by byte
 * without buffering (fetch-scanner.ts), a plain literal is skipped, and of a body literal
 * only the prefix the planner asks for is held (capped); the rest streams chunk by chunk.
 */
import { BodyLiteralRewriter, type BodyContext } from './body-literal.js';
import { parseBodyItem } from './fetch-item.js';
import { newFetch, scanFetchLine, type FetchState } from './fetch-scanner.js';

/** A status or continuation line is at most this long before it is passed through raw. */
const TEXT_LINE_CAP = 64 * 1024;
const HEAD_CAP = 64;
const LITERAL = /^~?\{(\d{1,15})\+?\}$/;
const STATUS = new Set(['OK', 'NO', 'BAD', 'BYE', 'PREAUTH', 'CAPABILITY']);

export interface RewriterContext extends BodyContext {
  /** Sees every status/continuation line (without CRLF) before it is written. */
  onTextLine?(line: string): void;
  /**
   * May rewrite a status line (CAPABILITY filtering); identity keeps its bytes exactly;
   * null drops it (a `+` the proxy asked upstream for itself, client-relay.ts).
   */
  rewriteTextLine?(line: string): string | null;
}

type State = 'head' | 'text' | 'raw-to-eol' | 'other' | 'fetch' | 'literal' | 'body';

export class ResponseRewriter {
  private state: State = 'head';
  private head: number[] = [];
  /**
   * The chunk the head lies in, from `headFrom` to `headTo`, when it all lies in the chunk
   * being read (the common case): then it is emitted as a view of that chunk, which joins
   * the output around it without a copy (join-views.ts). Null when it began in an earlier one.
   */
  private headChunk: Uint8Array | null = null;
  private headFrom = 0;
  private headTo = 0;
  private text: Uint8Array[] = [];
  private textLength = 0;
  private tail = '';
  private literalRemaining = 0;
  private literalReturn: 'other' | 'fetch' = 'other';
  private fetch: FetchState = newFetch();
  /** Active exactly while the state is 'body'. */
  private readonly body: BodyLiteralRewriter;
  private written = 0;
  private injections: Uint8Array[] = [];
  /** Last words to emit at the next response boundary, after which input is dropped. */
  private closing: { bytes: Uint8Array; done: () => void } | null = null;
  private discarding = false;

  constructor(
    private readonly context: RewriterContext,
    private readonly push: (bytes: Uint8Array) => void,
  ) {
    this.body = new BodyLiteralRewriter(context, (bytes) => this.emit(bytes));
  }

  /** Output bytes so far. */
  get bytesWritten(): number {
    return this.written;
  }

  /**
   * True while views of earlier input are held (a status line not yet complete, a body
   * prefix collected for planning). When false after a write has finished, nothing of
   * its chunk is read again, so the relay may read into that buffer anew (relay-pump.ts).
   */
  holdsInput(): boolean {
    return this.text.length > 0 || this.body.holdsInput();
  }

  /**
   * Rewrites `chunk`, emitting as it goes. Undefined when it finished synchronously (the
   * common case: the relay then reads on at once); a promise when a body waits for a side
   * fetch's plan, resolved once the rest of `chunk` is through.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.writeFrom(chunk, 0);
  }

  private writeFrom(chunk: Uint8Array, from: number): Promise<void> | undefined {
    if (this.discarding) return undefined;
    let i = from;
    while (i < chunk.length && !this.discarding) {
      switch (this.state) {
        case 'head':
          i = this.scanHead(chunk, i);
          break;
        case 'text':
          i = this.scanText(chunk, i);
          break;
        case 'raw-to-eol':
          i = this.scanRawToEol(chunk, i);
          break;
        case 'other':
          i = this.scanOther(chunk, i);
          break;
        case 'fetch':
          i = this.scanFetch(chunk, i);
          break;
        case 'literal':
          i = this.skipLiteral(chunk, i);
          break;
        case 'body': {
          const next = this.body.feed(chunk, i);
          if (typeof next !== 'number') {
            return next.then((resumeAt) => {
              if (!this.body.active) this.state = 'fetch';
              return this.writeFrom(chunk, resumeAt);
            });
          }
          i = next;
          if (!this.body.active) this.state = 'fetch';
          break;
        }
      }
    }
    return undefined;
  }

  /**
   * Writes bytes of the proxy's own (a continuation request `+ …`) between two
   * responses: now if upstream output is at a line boundary, else at the next one.
   */
  inject(bytes: Uint8Array): void {
    if (this.state === 'head' && this.head.length === 0) this.emit(bytes);
    else this.injections.push(bytes);
  }

  /**
   * Ends the output cleanly: `bytes` (a `* BYE`) go out at the next response boundary —
   * now if there is one, else once the response being relayed is complete, so that no
   * client ever sees a literal cut short — and every upstream byte after is dropped.
   */
  closeAtBoundary(bytes: Uint8Array, done: () => void): void {
    this.closing = { bytes, done };
    if (this.state === 'head' && this.head.length === 0) this.lineDone();
  }

  private lineDone(): void {
    this.state = 'head';
    if (this.injections.length > 0) {
      const queued = this.injections;
      this.injections = [];
      for (const bytes of queued) this.emit(bytes);
    }
    if (this.closing !== null) {
      const { bytes, done } = this.closing;
      this.closing = null;
      this.emit(bytes);
      this.discarding = true;
      done();
    }
  }

  /** Upstream ended: whatever is held (a partial line, a body prefix) goes out raw. */
  end(): void {
    if (this.state === 'head' && this.head.length > 0) this.emit(Uint8Array.from(this.head));
    if (this.state === 'text') for (const piece of this.text) this.emit(piece);
    this.body.abandon();
    this.head = [];
    this.text = [];
  }

  private emit(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.discarding) return;
    this.written += bytes.length;
    this.push(bytes);
  }

  // ---- line classification -------------------------------------------------------

  private scanHead(chunk: Uint8Array, start: number): number {
    this.headChunk = this.head.length > 0 ? null : chunk;
    this.headFrom = start;
    for (let i = start; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === 10) {
        this.headTo = i;
        this.classify(true);
        return i;
      }
      this.head.push(c);
      this.headTo = i + 1;
      if ((c === 32 && this.classify(false)) || this.head.length >= HEAD_CAP) {
        if (this.state === 'head') this.enter('other');
        return i + 1;
      }
    }
    return chunk.length;
  }

  /** Decides the line kind from its first tokens; returns false while undecided. */
  private classify(complete: boolean): boolean {
    const head = String.fromCharCode(...this.head);
    const tokens = head.replace(/\r$/, '').split(' ');
    // Tokens complete so far (the last may still grow, unless the line is): a count, not a
    // closure, as this runs at every space of a line's first tokens, several per message.
    const known = complete ? Infinity : tokens.length - 1;
    if (tokens[0] === '*') {
      if (known <= 1) return false;
      const second = (tokens[1] ?? '').toUpperCase();
      if (STATUS.has(second)) return this.enter('text');
      if (!/^\d{1,10}$/.test(second)) return this.enter('other');
      if (known <= 2) return false;
      if ((tokens[2] ?? '').toUpperCase() === 'FETCH') {
        this.fetch = newFetch();
        this.fetch.seq = Number(second);
        return this.enter('fetch');
      }
      return this.enter('other');
    }
    if (tokens[0] === '') return this.enter('other');
    if (known <= 0) return false;
    // `+ …` continuation or a tagged status response: text without literals.
    return this.enter('text');
  }

  private enter(state: 'text' | 'other' | 'fetch'): true {
    const head =
      this.headChunk !== null
        ? this.headChunk.subarray(this.headFrom, this.headTo)
        : Uint8Array.from(this.head);
    this.head = [];
    this.headChunk = null;
    this.state = state;
    this.tail = '';
    if (state === 'text') {
      this.text = [head];
      this.textLength = head.length;
    } else if (state === 'other') {
      this.scanOther(head, 0);
    } else {
      this.scanFetch(head, 0);
    }
    return true;
  }

  // ---- status and continuation lines -----------------------------------------------

  private scanText(chunk: Uint8Array, start: number): number {
    const eol = chunk.indexOf(10, start);
    const end = eol === -1 ? chunk.length : eol + 1;
    const piece = chunk.subarray(start, end);
    if (this.textLength + piece.length > TEXT_LINE_CAP) {
      for (const held of this.text) this.emit(held);
      this.text = [];
      this.state = 'raw-to-eol';
      return start;
    }
    this.text.push(piece);
    this.textLength += piece.length;
    if (eol === -1) return end;
    this.finishTextLine();
    return end;
  }

  private finishTextLine(): void {
    const raw = Buffer.concat(this.text);
    this.text = [];
    this.textLength = 0;
    const ending = raw.length >= 2 && raw[raw.length - 2] === 13 ? 2 : 1;
    const line = raw.toString('latin1', 0, raw.length - ending);
    this.context.onTextLine?.(line);
    const rewrite = this.context.rewriteTextLine;
    const rewritten = rewrite === undefined ? line : rewrite(line);
    if (rewritten === line) this.emit(raw);
    else if (rewritten !== null)
      this.emit(Buffer.from(rewritten + (ending === 2 ? '\r\n' : '\n'), 'latin1'));
    // After the line: anything injected while it was handled goes out behind it.
    this.lineDone();
  }

  private scanRawToEol(chunk: Uint8Array, start: number): number {
    const eol = chunk.indexOf(10, start);
    const end = eol === -1 ? chunk.length : eol + 1;
    this.emit(chunk.subarray(start, end));
    if (eol !== -1) this.lineDone();
    return end;
  }

  // ---- untagged data other than FETCH: only literals matter ------------------------

  private scanOther(chunk: Uint8Array, start: number): number {
    const eol = chunk.indexOf(10, start);
    if (eol === -1) {
      this.emit(chunk.subarray(start));
      this.tail = lastChars(this.tail, chunk, start, chunk.length);
      return chunk.length;
    }
    this.emit(chunk.subarray(start, eol + 1));
    const before = lastChars(this.tail, chunk, start, eol).replace(/\r$/, '');
    this.tail = '';
    const literal = LITERAL.exec(before.slice(before.lastIndexOf(' ') + 1));
    if (literal !== null) this.startLiteral(Number(literal[1]), 'other');
    else this.lineDone();
    return eol + 1;
  }

  private startLiteral(length: number, back: 'other' | 'fetch'): void {
    this.literalRemaining = length;
    this.literalReturn = back;
    this.state = length === 0 ? back : 'literal';
  }

  private skipLiteral(chunk: Uint8Array, start: number): number {
    const take = Math.min(this.literalRemaining, chunk.length - start);
    this.emit(chunk.subarray(start, start + take));
    this.literalRemaining -= take;
    if (this.literalRemaining === 0) this.state = this.literalReturn;
    return start + take;
  }

  // ---- FETCH responses ---------------------------------------------------------------

  private scanFetch(chunk: Uint8Array, start: number): number {
    const eol = scanFetchLine(this.fetch, chunk, start);
    if (eol === -1) {
      this.emit(chunk.subarray(start));
      return chunk.length;
    }
    this.emit(chunk.subarray(start, eol + 1));
    this.fetchLineEnd();
    return eol + 1;
  }

  private fetchLineEnd(): void {
    const f = this.fetch;
    const literal = f.inQuote || f.bracket > 0 ? null : LITERAL.exec(f.curr);
    if (literal === null) {
      this.finishFetchResponse();
      return;
    }
    const length = Number(literal[1]);
    const item = f.depth === 1 ? parseBodyItem(f.prev) : null;
    f.curr = '';
    if (f.depth === 1) f.prev = '<literal>';
    if (item === null) {
      this.startLiteral(length, 'fetch');
      return;
    }
    this.body.begin(item, length, f.uid, this.written, f.seq);
    this.state = this.body.active ? 'body' : 'fetch';
  }

  private finishFetchResponse(): void {
    this.body.responseEnded(this.fetch.uid);
    this.fetch = newFetch();
    this.lineDone();
  }
}

/** The last few characters of a line that may span chunks (enough for a literal marker). */
function lastChars(tail: string, chunk: Uint8Array, start: number, end: number): string {
  const from = Math.max(start, end - 24);
  return (
    tail + Buffer.from(chunk.buffer, chunk.byteOffset + from, end - from).toString('latin1')
  ).slice(-24);
}
