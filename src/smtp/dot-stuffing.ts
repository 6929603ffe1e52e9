/**
 * DATA transparency (RFC 5321 §4.5.2) for an outgoing message: every line that starts
 * with "." gets another ".", bare LF becomes CRLF (LMTP is CRLF-only), and the message
 * ends in CRLF. Returns slices of the input plus the inserted bytes, so a 50 MB message is
 * not copied. Hand-written rather than nodemailer's DataStream because that one inspects
 * every byte in JavaScript (the largest CPU item of `npm run bench -- smtp`); this one
 * jumps from LF to LF with Buffer.indexOf. `DotStuffer` does the same for a message that
 * arrives in pieces (a line may end in one piece and start in the next).
 */
const CR = Buffer.from('\r');
const LF = Buffer.from('\n');
const DOT = Buffer.from('.');
const CRLF = Buffer.from('\r\n');

export class DotStuffer {
  /** The last byte of the pieces so far; undefined before the first byte. */
  private last: number | undefined;

  /** The wire form of the next piece of the message. */
  push(piece: Uint8Array): Buffer[] {
    const data = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    if (data.length === 0) return [];
    const parts: Buffer[] = [];
    let from = 0;
    if (data[0] === 0x2e && (this.last === undefined || this.last === 0x0a)) parts.push(DOT);
    for (let lf = data.indexOf(0x0a); lf !== -1; lf = data.indexOf(0x0a, lf + 1)) {
      if ((lf === 0 ? this.last : data[lf - 1]) !== 0x0d) {
        parts.push(data.subarray(from, lf), CR);
        from = lf;
      }
      if (data[lf + 1] === 0x2e) {
        parts.push(data.subarray(from, lf + 1), DOT);
        from = lf + 1;
      }
    }
    parts.push(data.subarray(from));
    this.last = data[data.length - 1];
    return parts.filter((part) => part.length > 0);
  }

  /** What ends the message: nothing, LF or CRLF, so that it ends in CRLF (an empty one stays empty). */
  end(): Buffer[] {
    if (this.last === 0x0d) return [LF];
    return this.last !== undefined && this.last !== 0x0a ? [CRLF] : [];
  }
}

export function dotStuff(message: Uint8Array): Buffer[] {
  const stuffer = new DotStuffer();
  return [...stuffer.push(message), ...stuffer.end()];
}
