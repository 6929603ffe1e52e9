/**
 * RFC 5322 header-block reading for the transform and for smime.ts: where the header
 * ends, each field's exact bytes, and the few MIME facts the transform checks.
 * Hand-written because it must report byte offsets and stop at the header's end
 * (mailsplit/mailparser stream and rebuild; they would read the whole 10 MB body).
 */

import type { RecryptPlan } from './transform-types.js';

/** The longest header block a 'message' is searched for its end. */
export const MAX_HEADER_BYTES = 256 * 1024;

/** The header block ends at `headerEnd` (start of the empty line); the body begins at `bodyStart`. */
export interface HeaderBounds {
  headerEnd: number;
  bodyStart: number;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Finds the empty line that ends the header (CRLF CRLF or LF LF, mixed tolerated).
 * Returns null when `bytes` holds no empty line within its first `max` bytes.
 */
export function findHeaderEnd(bytes: Uint8Array, max = bytes.length): HeaderBounds | null {
  const limit = Math.min(bytes.length, max);
  // Search only the allowed window: a 10 MB body without line breaks is not scanned.
  const window = bytes.subarray(0, Math.min(bytes.length, limit + 1));
  let line = 0;
  while (line < limit) {
    if (bytes[line] === LF) return { headerEnd: line, bodyStart: line + 1 };
    if (bytes[line] === CR && line + 1 < bytes.length && bytes[line + 1] === LF) {
      return { headerEnd: line, bodyStart: line + 2 };
    }
    const next = window.indexOf(LF, line);
    if (next < 0 || next >= limit) return null;
    line = next + 1;
  }
  return null;
}

/** One header field: its bytes are [start, end), `end` past its final line terminator. */
export interface HeaderField {
  /** Lowercased field name. */
  name: string;
  start: number;
  /** Just past the colon. */
  valueStart: number;
  /** End of the value, before the final line terminator. */
  valueEnd: number;
  end: number;
}

/** Splits [0, headerEnd) into fields; continuation lines (leading SP/HT) belong to the field above. */
export function parseHeaderFields(bytes: Uint8Array, headerEnd: number): HeaderField[] {
  const fields: HeaderField[] = [];
  let at = 0;
  while (at < headerEnd) {
    const start = at;
    let end = start;
    // extend over continuation lines
    for (;;) {
      const lf = bytes.indexOf(LF, end);
      end = lf < 0 || lf >= headerEnd ? headerEnd : lf + 1;
      if (end >= headerEnd) break;
      const c = bytes[end];
      if (c !== 0x20 && c !== 0x09) break;
    }
    let valueEnd = end;
    if (valueEnd > start && bytes[valueEnd - 1] === LF) valueEnd--;
    if (valueEnd > start && bytes[valueEnd - 1] === CR) valueEnd--;
    const colon = bytes.indexOf(0x3a, start);
    if (colon >= start && colon < valueEnd) {
      const name = Buffer.from(bytes.buffer, bytes.byteOffset + start, colon - start)
        .toString('latin1')
        .trim()
        .toLowerCase();
      fields.push({ name, start, valueStart: colon + 1, valueEnd, end });
    }
    at = end;
  }
  return fields;
}

/** A field's value unfolded into one line (latin1, so 8-bit bytes survive). */
export function fieldValue(bytes: Uint8Array, field: HeaderField): string {
  return Buffer.from(
    bytes.buffer,
    bytes.byteOffset + field.valueStart,
    field.valueEnd - field.valueStart,
  )
    .toString('latin1')
    .replace(/\r?\n(?=[ \t])/g, '')
    .trim();
}

/** `type/subtype` (lowercased) and parameters (names lowercased, quotes removed) of a Content-Type. */
export function parseContentType(value: string): { type: string; params: Map<string, string> } {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') quoted = !quoted;
    else if (c === '\\' && quoted && i + 1 < value.length) current += value[++i];
    else if (c === ';' && !quoted) {
      parts.push(current);
      current = '';
      continue;
    }
    if (c !== '"' && c !== '\\') current += c;
  }
  parts.push(current);
  const type = (parts.shift() ?? '')
    .replace(/\([^)]*\)/g, '')
    .trim()
    .toLowerCase();
  const params = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return { type, params };
}

/**
 * Where the CMS body of an S/MIME message starts and how it is encoded: Content-Type
 * application/(x-)pkcs7-mime with smime-type enveloped-data, authEnveloped-data or none,
 * and Content-Transfer-Encoding base64 or binary.
 */
export function locateSmimeBody(
  message: Uint8Array,
):
  | { kind: 'body'; bodyStart: number; encoding: 'base64' | 'binary' }
  | Extract<RecryptPlan, { kind: 'unchanged' } | { kind: 'need-more' }> {
  const bounds = findHeaderEnd(message, MAX_HEADER_BYTES);
  if (bounds === null) {
    if (message.length >= MAX_HEADER_BYTES)
      return { kind: 'unchanged', reason: 'too-large', detail: 'header block' };
    return { kind: 'need-more', atLeast: message.length + 1 };
  }
  let contentType: string | undefined;
  let encoding: string | undefined;
  for (const field of parseHeaderFields(message, bounds.headerEnd)) {
    if (field.name === 'content-type' && contentType === undefined)
      contentType = fieldValue(message, field);
    if (field.name === 'content-transfer-encoding' && encoding === undefined) {
      encoding = fieldValue(message, field).toLowerCase();
    }
  }
  if (contentType === undefined) return { kind: 'unchanged', reason: 'not-smime' };
  const { type, params } = parseContentType(contentType);
  if (type !== 'application/pkcs7-mime' && type !== 'application/x-pkcs7-mime') {
    return { kind: 'unchanged', reason: 'not-smime' };
  }
  const smimeType = params.get('smime-type')?.toLowerCase();
  if (
    smimeType !== undefined &&
    smimeType !== 'enveloped-data' &&
    smimeType !== 'authenveloped-data'
  ) {
    return { kind: 'unchanged', reason: 'not-smime', detail: `smime-type=${smimeType}` };
  }
  if (encoding === 'base64' || encoding === 'binary') {
    return { kind: 'body', bodyStart: bounds.bodyStart, encoding };
  }
  return {
    kind: 'unchanged',
    reason: 'not-smime',
    detail: `transfer encoding ${encoding ?? '7bit'}`,
  };
}
