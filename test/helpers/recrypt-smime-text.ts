/** S/MIME messages as text for tests: split one, decode its body, re-wrap DER in any line layout. */

/** The header block and body of a message, split at the first empty line (CRLF or LF). */
export function splitMessage(message: Uint8Array): { header: string; body: string } {
  const text = Buffer.from(message).toString('latin1');
  const match = /\r?\n\r?\n/.exec(text)!;
  return { header: text.slice(0, match.index), body: text.slice(match.index + match[0].length) };
}

/** The DER of a base64 S/MIME body. */
export function derOf(message: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.from(splitMessage(message).body, 'base64'));
}

/** An S/MIME message with `header` and `der` in base64 lines of the given lengths. */
export function smimeWith(
  header: string,
  der: Uint8Array,
  lineLengths: number[],
  eol = '\r\n',
): Buffer {
  const text = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let at = 0, i = 0; at < text.length; i++) {
    const length = lineLengths[i % lineLengths.length]!;
    lines.push(text.slice(at, at + length));
    at += length;
  }
  return Buffer.from(header + eol + eol + lines.join(eol) + eol, 'latin1');
}
