/**
 * DATA transparency (RFC 5321 §4.5.2) for an outgoing message: every line that starts
 * with "." gets another ".", bare LF becomes CRLF (LMTP is CRLF-only), and the message
 * ends in CRLF. Returns slices of the input plus the inserted bytes, so a 50 MB message is
 * not copied. Hand-written rather than nodemailer's DataStream because that one inspects
 * every byte in JavaScript (the largest CPU item of `npm run bench -- smtp`); this one
 * jumps from LF to LF with Buffer.indexOf.
 */
const CR = Buffer.from('\r');
const DOT = Buffer.from('.');
const CRLF = Buffer.from('\r\n');

export function dotStuff(message: Uint8Array): Buffer[] {
  const data = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const parts: Buffer[] = [];
  let from = 0;
  if (data.length > 0 && data[0] === 0x2e) parts.push(DOT);
  for (let lf = data.indexOf(0x0a); lf !== -1; lf = data.indexOf(0x0a, lf + 1)) {
    if (lf === 0 || data[lf - 1] !== 0x0d) {
      parts.push(data.subarray(from, lf), CR);
      from = lf;
    }
    if (data[lf + 1] === 0x2e) {
      parts.push(data.subarray(from, lf + 1), DOT);
      from = lf + 1;
    }
  }
  parts.push(data.subarray(from));
  const last = data[data.length - 1];
  // An empty message stays empty; a final bare LF already got its CR above.
  if (last === 0x0d) parts.push(Buffer.from('\n'));
  else if (last !== undefined && last !== 0x0a) parts.push(CRLF);
  return parts.filter((part) => part.length > 0);
}
