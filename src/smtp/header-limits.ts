/**
 * Caps on the header section of a message, checked while DATA streams in, before any
 * parser sees the message. Header parsers are where untrusted input turns into CPU:
 * mailauth's header parser joins folded lines quadratically (a 0.4 MiB header folded over
 * 100k lines cost 20 s of the one event loop), so the header must be small in bytes, in
 * lines and per field before mailauth, mailparser or the envelope writer read it
 * (docs/threat-model.md "Limits"). The scan stops at the blank line that ends the header;
 * a body is never scanned.
 */

export interface HeaderLimits {
  /** Bytes of the whole header section (Postfix's header_size_limit is 100 KiB). */
  maxHeaderBytes: number;
  /** Physical lines of the header section, continuation lines included. */
  maxHeaderLines: number;
  /** Bytes of one header field with all its folded continuation lines. */
  maxHeaderFieldBytes: number;
}

export const DEFAULT_HEADER_LIMITS: HeaderLimits = {
  maxHeaderBytes: 100 * 1024,
  maxHeaderLines: 1000,
  maxHeaderFieldBytes: 32 * 1024,
};

export type HeaderViolation = 'header-bytes' | 'header-lines' | 'field-bytes';

const LF = 0x0a;
const CR = 0x0d;

/** Feeds the message in chunks as they arrive; `violation` is set at the first cap passed. */
export class HeaderScanner {
  violation: HeaderViolation | undefined;
  /** True once the blank line after the header has been seen (or a cap was passed). */
  done = false;
  private bytes = 0;
  private lines = 0;
  private fieldBytes = 0;
  private lineBytes = 0;
  private lastByte = -1;

  constructor(private readonly limits: HeaderLimits) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (!this.done && at < chunk.length) {
      const newline = chunk.indexOf(LF, at);
      const end = newline === -1 ? chunk.length : newline;
      if (end > at) this.addToLine(chunk, at, end);
      if (newline === -1) return;
      // A blank line ("" or a lone CR before LF; bare LF is tolerated) ends the header.
      if (this.lineBytes === 0 || (this.lineBytes === 1 && this.lastByte === CR)) {
        this.done = true;
        return;
      }
      this.lastByte = LF;
      this.lineBytes = 0;
      this.lines += 1;
      if (this.lines > this.limits.maxHeaderLines) return this.fail('header-lines');
      this.count(1);
      at = newline + 1;
    }
  }

  private addToLine(chunk: Uint8Array, from: number, to: number): void {
    if (this.lineBytes === 0) {
      const first = chunk[from]!;
      // A line that starts with white space continues the field above it (RFC 5322 §2.2.3).
      const continuation = (first === 0x20 || first === 0x09) && this.lines > 0;
      if (!continuation) this.fieldBytes = 0;
    }
    this.lineBytes += to - from;
    this.lastByte = chunk[to - 1]!;
    this.count(to - from);
  }

  private count(bytes: number): void {
    if (this.done) return;
    this.bytes += bytes;
    this.fieldBytes += bytes;
    // A CR that may start the blank line's CRLF is not counted until its line goes on.
    const pending = this.lastByte === CR ? 1 : 0;
    if (this.fieldBytes - pending > this.limits.maxHeaderFieldBytes) this.fail('field-bytes');
    else if (this.bytes - pending > this.limits.maxHeaderBytes) this.fail('header-bytes');
  }

  private fail(violation: HeaderViolation): void {
    this.violation = violation;
    this.done = true;
  }
}
