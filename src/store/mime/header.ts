import type { ByteRange } from './types.js';

/**
 * Header-block scanning with byte offsets. Hand-written rather than taken from
 * mailsplit/libmime because IMAP needs exact byte positions of every header block and
 * field (BODY[HEADER], BODY[n.MIME], HEADER.FIELDS returns the original bytes), which
 * those streaming/decoding parsers do not expose. Accepts CRLF and bare LF.
 */

export interface HeaderField {
  /** Field name as written (without the colon). */
  name: string;
  /** Lower-case name for lookups. */
  key: string;
  /** Value unfolded (line breaks before whitespace removed) and trimmed; bytes decoded as UTF-8. */
  value: string;
  /** The field's raw bytes, from its first character through its final line break. */
  range: ByteRange;
}

const LF = 0x0a;
const CR = 0x0d;

/** The end (exclusive) of the line starting at `pos`, including its line break; `limit` if none. */
export function lineEnd(bytes: Uint8Array, pos: number, limit: number): number {
  const i = bytes.indexOf(LF, pos);
  return i === -1 || i >= limit ? limit : i + 1;
}

/** True when the line [start, end) is empty apart from its line break. */
function isBlankLine(bytes: Uint8Array, start: number, end: number): boolean {
  const len = end - start;
  if (len === 0) return false;
  if (len === 1) return bytes[start] === LF;
  return len === 2 && bytes[start] === CR && bytes[start + 1] === LF;
}

/**
 * Splits [start, limit) into header block (through the blank line) and body. A part
 * with no blank line is all header and an empty body at `limit`, as Dovecot does.
 */
export function splitHeader(
  bytes: Uint8Array,
  start: number,
  limit: number,
): { header: ByteRange; body: ByteRange } {
  let pos = start;
  while (pos < limit) {
    const end = lineEnd(bytes, pos, limit);
    if (isBlankLine(bytes, pos, end)) {
      return { header: { start, end }, body: { start: end, end: limit } };
    }
    pos = end;
  }
  return { header: { start, end: limit }, body: { start: limit, end: limit } };
}

const utf8 = new TextDecoder('utf-8');

function decodeValue(bytes: Uint8Array, start: number, end: number): string {
  return utf8
    .decode(bytes.subarray(start, end))
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/\r?\n$/, '')
    .trim();
}

/**
 * The fields of a header block in order. Lines that are neither a field nor a
 * continuation (no colon) are skipped; a continuation before any field is ignored.
 */
export function parseHeaderFields(bytes: Uint8Array, header: ByteRange): HeaderField[] {
  const fields: HeaderField[] = [];
  let current: { nameEnd: number; start: number; end: number } | null = null;
  const flush = (): void => {
    if (current === null) return;
    const name = utf8.decode(bytes.subarray(current.start, current.nameEnd)).trim();
    if (name.length > 0) {
      fields.push({
        name,
        key: name.toLowerCase(),
        value: decodeValue(bytes, current.nameEnd + 1, current.end),
        range: { start: current.start, end: current.end },
      });
    }
    current = null;
  };
  let pos = header.start;
  while (pos < header.end) {
    const end = lineEnd(bytes, pos, header.end);
    if (isBlankLine(bytes, pos, end)) break;
    const first = bytes[pos];
    if ((first === 0x20 || first === 0x09) && current !== null) {
      current.end = end;
    } else {
      flush();
      const colon = bytes.indexOf(0x3a, pos);
      if (colon !== -1 && colon < end) current = { nameEnd: colon, start: pos, end };
    }
    pos = end;
  }
  flush();
  return fields;
}

/** The first field called `key` (lower-case), or null. */
export function firstField(fields: HeaderField[], key: string): HeaderField | null {
  return fields.find((f) => f.key === key) ?? null;
}

/**
 * BODY[HEADER.FIELDS (…)] / BODY[HEADER.FIELDS.NOT (…)]: the original bytes of the
 * selected fields in message order, followed by the empty line (CRLF), as RFC 3501
 * and Dovecot return them. `names` are matched case-insensitively.
 */
export function headerFields(
  bytes: Uint8Array,
  header: ByteRange,
  names: string[],
  not = false,
): Uint8Array {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const field of parseHeaderFields(bytes, header)) {
    if (wanted.has(field.key) === not) continue;
    const chunk = bytes.subarray(field.range.start, field.range.end);
    chunks.push(chunk);
    total += chunk.length;
    if (chunk[chunk.length - 1] !== LF) {
      chunks.push(CRLF);
      total += 2;
    }
  }
  chunks.push(CRLF);
  total += 2;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const CRLF = new Uint8Array([CR, LF]);
