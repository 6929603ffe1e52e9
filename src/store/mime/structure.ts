import { parseAddressList } from './address.js';
import { firstField, lineEnd, parseHeaderFields, splitHeader, type HeaderField } from './header.js';
import { paramValue, parseContentType, parseDisposition, parseLanguage } from './params.js';
import { directLineCounter, type LineCounter } from './line-count.js';
import type { BodyPart, Envelope, MessageStructure } from './types.js';

/**
 * The MIME tree of a message with byte offsets. Pure and total: any byte string gives
 * a best-effort tree (a missing closing boundary ends the part at the end of its
 * parent, a message without headers has an empty header block, bare LF is accepted).
 * Nesting deeper than MAX_DEPTH is treated as opaque leaves so hostile input cannot
 * blow the stack.
 */

const MAX_DEPTH = 64;
const LF = 0x0a;
const CR = 0x0d;

function fieldValue(fields: HeaderField[], key: string): string | null {
  return firstField(fields, key)?.value ?? null;
}

export function buildEnvelope(fields: HeaderField[]): Envelope {
  const from = parseAddressList(fieldValue(fields, 'from'));
  const sender = parseAddressList(fieldValue(fields, 'sender'));
  const replyTo = parseAddressList(fieldValue(fields, 'reply-to'));
  return {
    date: fieldValue(fields, 'date'),
    subject: fieldValue(fields, 'subject'),
    from,
    sender: sender.length > 0 ? sender : from,
    replyTo: replyTo.length > 0 ? replyTo : from,
    to: parseAddressList(fieldValue(fields, 'to')),
    cc: parseAddressList(fieldValue(fields, 'cc')),
    bcc: parseAddressList(fieldValue(fields, 'bcc')),
    inReplyTo: fieldValue(fields, 'in-reply-to'),
    messageId: fieldValue(fields, 'message-id'),
  };
}

/** True when the line [pos, end) is `--boundary` or `--boundary--` followed only by whitespace. */
function boundaryKind(
  bytes: Uint8Array,
  pos: number,
  end: number,
  marker: Uint8Array,
): 'part' | 'close' | null {
  if (end - pos < marker.length) return null;
  for (let i = 0; i < marker.length; i++) if (bytes[pos + i] !== marker[i]) return null;
  let p = pos + marker.length;
  let kind: 'part' | 'close' = 'part';
  if (p + 1 < end && bytes[p] === 0x2d && bytes[p + 1] === 0x2d) {
    kind = 'close';
    p += 2;
  }
  for (; p < end; p++) {
    const c = bytes[p];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) return null;
  }
  return kind;
}

/** The line break that precedes `pos` belongs to the boundary delimiter (RFC 2046 §5.1.1). */
function stripDelimiterBreak(bytes: Uint8Array, start: number, pos: number): number {
  let end = pos;
  if (end > start && bytes[end - 1] === LF) end--;
  if (end > start && bytes[end - 1] === CR) end--;
  return end;
}

/**
 * Where a part sits in its parent: [start, rawEnd) runs up to the start of the boundary
 * line that ends it (`terminated`), or to the end of the parent.
 */
interface Slot {
  start: number;
  rawEnd: number;
  terminated: boolean;
}

/** Children of a multipart body and where its close-delimiter line ended (null: none). */
function splitMultipart(
  bytes: Uint8Array,
  slot: Slot,
  bodyStart: number,
  boundary: string,
): { children: Slot[]; closeLineEnd: number | null } {
  const marker = new TextEncoder().encode(`--${boundary}`);
  const children: Slot[] = [];
  let partStart = -1;
  let pos = bodyStart;
  while (pos < slot.rawEnd) {
    const end = lineEnd(bytes, pos, slot.rawEnd);
    if (bytes[pos] === 0x2d) {
      const kind = boundaryKind(bytes, pos, end, marker);
      if (kind !== null) {
        if (partStart !== -1) children.push({ start: partStart, rawEnd: pos, terminated: true });
        if (kind === 'close') return { children, closeLineEnd: end };
        partStart = end;
      }
    }
    pos = end;
  }
  // no closing boundary: the last part runs to the end of the parent
  if (partStart !== -1) children.push({ ...slot, start: partStart });
  return { children, closeLineEnd: null };
}

/**
 * Parses the part in `slot`. Where the part ends follows Dovecot, the reference the
 * IMAP proxy must be indistinguishable from: the line break before a terminating
 * boundary belongs to the boundary (RFC 2046 §5.1.1), except when the part's content
 * ends with a nested multipart's close-delimiter line; that line keeps its line break
 * (so BODY[1] of a nested multipart ends in `--inner--CRLF`).
 */
function parsePart(
  bytes: Uint8Array,
  slot: Slot,
  defaultType: 'text/plain' | 'message/rfc822',
  depth: number,
  countLines: LineCounter,
): { part: BodyPart; fields: HeaderField[]; headerOnly: boolean } {
  const cut = slot.terminated ? stripDelimiterBreak(bytes, slot.start, slot.rawEnd) : slot.rawEnd;
  let { header, body } = splitHeader(bytes, slot.start, slot.rawEnd);
  const headerOnly = header.end === slot.rawEnd && body.start === slot.rawEnd;
  if (headerOnly && header.end > cut) {
    // header-only part: the boundary's line break is not part of it
    header = { start: slot.start, end: cut };
    body = { start: cut, end: cut };
  }
  const fields = parseHeaderFields(bytes, header);
  const contentType = parseContentType(fieldValue(fields, 'content-type'), defaultType);
  const encoding = fieldValue(fields, 'content-transfer-encoding');
  let end = Math.max(body.start, cut);
  let parts: BodyPart[] = [];
  let message: BodyPart['message'] = null;
  if (depth < MAX_DEPTH) {
    const boundary =
      contentType.type === 'multipart' ? paramValue(contentType.params, 'boundary') : null;
    if (boundary !== null && boundary.length > 0) {
      const childDefault = contentType.subtype === 'digest' ? 'message/rfc822' : 'text/plain';
      const split = splitMultipart(bytes, slot, body.start, boundary);
      parts = split.children.map(
        (c) => parsePart(bytes, c, childDefault, depth + 1, countLines).part,
      );
      if (split.closeLineEnd === slot.rawEnd) end = slot.rawEnd;
    } else if (contentType.type === 'message' && contentType.subtype === 'rfc822') {
      // Dovecot parses the encapsulated message whatever its Content-Transfer-Encoding
      // (a base64 one then has an empty envelope); so do we, to report the same structure.
      const inner = parsePart(
        bytes,
        { ...slot, start: body.start },
        'text/plain',
        depth + 1,
        countLines,
      );
      message = { envelope: buildEnvelope(inner.fields), root: inner.part };
      // a header-only inner message keeps the line break before the boundary (Dovecot)
      end = inner.headerOnly ? slot.rawEnd : inner.part.body.end;
    }
  }
  body = { start: body.start, end };
  const part: BodyPart = {
    header,
    body,
    contentType,
    id: fieldValue(fields, 'content-id'),
    description: fieldValue(fields, 'content-description'),
    encoding,
    size: body.end - body.start,
    lines: countLines(body),
    md5: fieldValue(fields, 'content-md5'),
    disposition: parseDisposition(fieldValue(fields, 'content-disposition')),
    language: parseLanguage(fieldValue(fields, 'content-language')),
    location: fieldValue(fields, 'content-location'),
    parts,
    message,
  };
  return { part, fields, headerOnly };
}

/**
 * Parses a whole stored message. Never throws. `countLines` may answer from counts made
 * beforehand (line-count.ts: a large message counted a slice at a time).
 */
export function parseMessageStructure(
  bytes: Uint8Array,
  countLines: LineCounter = directLineCounter(bytes),
): MessageStructure {
  const { part, fields } = parsePart(
    bytes,
    { start: 0, rawEnd: bytes.length, terminated: false },
    'text/plain',
    0,
    countLines,
  );
  return { size: bytes.length, envelope: buildEnvelope(fields), root: part };
}

/**
 * Resolves a section part number (e.g. `[1, 2]` for BODY[1.2]) to its part; `[]` is the
 * whole message. Null when the part does not exist. Follows RFC 3501 §6.4.5 as Dovecot
 * reads it (imap-msgpart.c): a multipart's n-th child; `1` of a non-multipart part is the
 * part itself, and only a message/rfc822 part may be followed by more numbers, which
 * then address its encapsulated message.
 */
export function partByPath(structure: MessageStructure, path: number[]): BodyPart | null {
  let part: BodyPart | null = structure.root;
  for (let i = 0; i < path.length && part !== null; i++) {
    const n = path[i] as number;
    const more = i < path.length - 1;
    if (!Number.isInteger(n) || n < 1) return null;
    if (part.contentType.type === 'multipart') part = part.parts[n - 1] ?? null;
    else if (n !== 1 || (more && part.message === null)) part = null;
    if (part !== null && part.message !== null && more) part = part.message.root;
  }
  return part;
}

/**
 * For BODY[<path>.HEADER] / .TEXT / .HEADER.FIELDS: the message whose header/text is
 * meant — the top-level message for `[]`, the encapsulated message of a message/rfc822
 * part otherwise (null when the part is not one).
 */
export function messageAt(structure: MessageStructure, path: number[]): BodyPart | null {
  if (path.length === 0) return structure.root;
  return partByPath(structure, path)?.message?.root ?? null;
}
