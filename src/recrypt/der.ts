/**
 * A minimal DER TLV reader that reports where every element lies in the input.
 *
 * Hand-written on purpose: the recrypt transform patches two fields of a stored message
 * in place, at byte offsets it must know exactly, and never re-encodes anything.
 * asn1js and pkijs parse into objects and re-encode on output, losing those offsets (and
 * reading a 10 MB message to touch its first 300 bytes). This reader looks only at the
 * headers it is asked for and never walks content it does not need.
 *
 * Every failure is a RecryptError('malformed-der'). A header or element that runs past
 * the end of the bytes at hand is reported separately (DerTruncatedError) so that a
 * caller reading a prefix can ask for more instead of refusing the input.
 */
import { RecryptError } from './errors.js';

/** Deepest nesting `readTree`-style walkers may descend (CMS prefixes need about 12). */
export const MAX_DER_DEPTH = 32;

/** One element's header, with offsets into the buffer it was read from. */
export interface Tlv {
  /** The identifier octet (low-tag-number form only: 0x30 SEQUENCE, 0xa1 [1] constructed…). */
  tag: number;
  /** Offset of the identifier octet. */
  offset: number;
  headerLength: number;
  /** Offset of the first content byte (= offset + headerLength). */
  contentOffset: number;
  /** Content length; -1 for a BER indefinite length (only when the caller allowed it). */
  contentLength: number;
  /** Offset just past the element; Infinity for an indefinite length. */
  end: number;
  constructed: boolean;
}

/** The bytes at hand end before the element (or its header) does; `needed` = total bytes needed. */
export class DerTruncatedError extends RecryptError {
  constructor(readonly needed: number) {
    super('malformed-der', `DER truncated: ${needed} bytes needed`);
  }
}

export interface ReadOptions {
  /**
   * Where the enclosing element ends (default: the buffer's end, which makes an element
   * running past it "truncated"). An element declaring more than its parent holds is
   * malformed, whatever the buffer holds.
   */
  limit?: number;
  /** Accept a BER indefinite length (0x80) on a constructed element. */
  allowIndefinite?: boolean;
  /** Require the whole element (not only its header) to lie within the buffer. */
  requireContent?: boolean;
}

function malformed(message: string): never {
  throw new RecryptError('malformed-der', message);
}

/** Reads the header of the element at `offset`. */
export function readTlv(buf: Uint8Array, offset: number, options: ReadOptions = {}): Tlv {
  const limit = options.limit ?? Infinity;
  if (offset >= limit) malformed(`element expected at ${offset}, parent ended at ${limit}`);
  if (offset >= buf.length) throw new DerTruncatedError(offset + 2);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) malformed(`high tag number form at ${offset} is not used in CMS`);
  const constructed = (tag & 0x20) !== 0;
  if (offset + 1 >= buf.length) throw new DerTruncatedError(offset + 2);
  const first = buf[offset + 1]!;
  let headerLength: number;
  let contentLength: number;
  if (first < 0x80) {
    headerLength = 2;
    contentLength = first;
  } else if (first === 0x80) {
    if (!options.allowIndefinite || !constructed) {
      malformed(`indefinite length at ${offset}`);
    }
    headerLength = 2;
    contentLength = -1;
  } else {
    const count = first & 0x7f;
    // 4 length octets already describe 4 GiB; more is never a real message.
    if (count > 4) malformed(`length of ${count} octets at ${offset}`);
    headerLength = 2 + count;
    if (offset + headerLength > buf.length) throw new DerTruncatedError(offset + headerLength);
    contentLength = 0;
    for (let i = 0; i < count; i++) contentLength = contentLength * 256 + buf[offset + 2 + i]!;
    if (buf[offset + 2] === 0 || contentLength < 0x80) {
      malformed(`non-minimal length at ${offset}`);
    }
  }
  const contentOffset = offset + headerLength;
  const end = contentLength < 0 ? Infinity : contentOffset + contentLength;
  if (end !== Infinity && end > limit) {
    malformed(`element at ${offset} (${end - offset} bytes) overruns its parent (ends ${limit})`);
  }
  if (contentOffset > limit) malformed(`header at ${offset} overruns its parent`);
  if (options.requireContent && end > buf.length) {
    if (end === Infinity) malformed(`indefinite length at ${offset} where content is required`);
    throw new DerTruncatedError(end);
  }
  return { tag, offset, headerLength, contentOffset, contentLength, end, constructed };
}

/** Reads the element at `offset`, requiring tag `tag` and its whole content in `buf`. */
export function expectTlv(
  buf: Uint8Array,
  offset: number,
  tag: number,
  limit: number,
  what: string,
): Tlv {
  const tlv = readTlv(buf, offset, { limit, requireContent: true });
  if (tlv.tag !== tag) {
    malformed(
      `${what}: tag 0x${tlv.tag.toString(16)} at ${offset}, expected 0x${tag.toString(16)}`,
    );
  }
  return tlv;
}

/**
 * The children of a constructed element whose content is entirely in `buf`.
 * Bounded: at most `maxChildren` elements, nesting checked by the caller's depth.
 */
export function readChildren(buf: Uint8Array, parent: Tlv, maxChildren = 4096): Tlv[] {
  if (!parent.constructed) malformed(`element at ${parent.offset} is not constructed`);
  if (parent.end === Infinity) malformed(`indefinite length at ${parent.offset}`);
  const children: Tlv[] = [];
  let at = parent.contentOffset;
  while (at < parent.end) {
    if (children.length >= maxChildren)
      malformed(`more than ${maxChildren} elements at ${parent.offset}`);
    const child = readTlv(buf, at, { limit: parent.end, requireContent: true });
    children.push(child);
    at = child.end;
  }
  return children;
}

/** An element's children, for definite or indefinite (end-of-contents 00 00) lengths. */
export function berChildren(der: Uint8Array, parent: Tlv): Tlv[] {
  const children: Tlv[] = [];
  let at = parent.contentOffset;
  for (;;) {
    if (parent.end !== Infinity && at >= parent.end) return children;
    if (parent.end === Infinity && der[at] === 0 && der[at + 1] === 0) return children;
    const limit = parent.end === Infinity ? der.length : parent.end;
    const child = readTlv(der, at, { limit, allowIndefinite: true });
    children.push(child);
    at = child.end === Infinity ? berEnd(der, child) : child.end;
    if (at > limit) malformed(`element at ${child.offset} runs past its parent`);
  }
}

/** Offset past an element, walking indefinite lengths (depth-limited). */
export function berEnd(der: Uint8Array, tlv: Tlv, depth = 0): number {
  if (tlv.end !== Infinity) return tlv.end;
  if (depth > 16) malformed('indefinite lengths nested too deep');
  let at = tlv.contentOffset;
  while (!(der[at] === 0 && der[at + 1] === 0)) {
    if (at >= der.length) malformed('missing end-of-contents');
    at = berEnd(der, readTlv(der, at, { limit: der.length, allowIndefinite: true }), depth + 1);
  }
  return at + 2;
}

/**
 * Checks that the element at `offset` and everything inside it is well-formed DER with
 * definite lengths and at most `maxDepth` levels of nesting; returns its header.
 * Primitive contents are not interpreted.
 */
export function checkTree(
  buf: Uint8Array,
  offset: number,
  limit: number,
  maxDepth = MAX_DER_DEPTH,
): Tlv {
  const walk = (at: number, end: number, depth: number): Tlv => {
    if (depth > maxDepth) malformed(`nesting deeper than ${maxDepth} at ${at}`);
    const tlv = readTlv(buf, at, { limit: end, requireContent: true });
    if (tlv.constructed) {
      let child = tlv.contentOffset;
      while (child < tlv.end) child = walk(child, tlv.end, depth + 1).end;
    }
    return tlv;
  };
  return walk(offset, limit, 0);
}

/** The element's bytes (header and content) as a view into `buf`. */
export function tlvBytes(buf: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.end === Infinity) malformed(`indefinite length at ${tlv.offset}`);
  return buf.subarray(tlv.offset, tlv.end);
}

/** The element's content as a view into `buf`. */
export function tlvContent(buf: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.end === Infinity) malformed(`indefinite length at ${tlv.offset}`);
  return buf.subarray(tlv.contentOffset, tlv.end);
}

/** Byte equality of two views (no allocation). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** [n] constructed, context-specific. */
  context: (n: number): number => 0xa0 | n,
  /** [n] primitive, context-specific. */
  contextPrimitive: (n: number): number => 0x80 | n,
} as const;

// ---- a tiny encoder: definite lengths only, for the envelope ----

/** DER length octets for `length`. */
export function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest & 0xff);
  return Uint8Array.from([0x80 | octets.length, ...octets]);
}

/** An element with tag `tag` whose content is the concatenation of `parts`. */
export function encodeTlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const header = encodeLength(length);
  const out = new Uint8Array(1 + header.length + length);
  out[0] = tag;
  out.set(header, 1);
  let at = 1 + header.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** DER of an OBJECT IDENTIFIER given in dotted form. */
export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((arc) => BigInt(arc));
  if (arcs.length < 2)
    throw new RecryptError('invalid-argument', `OID ${dotted} has fewer than two arcs`);
  const values = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const bytes: number[] = [];
  for (const value of values) {
    const group: number[] = [Number(value & 0x7fn)];
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) group.unshift(Number(rest & 0x7fn) | 0x80);
    bytes.push(...group);
  }
  return encodeTlv(TAG.OID, Uint8Array.from(bytes));
}

/** The content octets of an OID (what follows 06 LL), for comparing against a parsed OID. */
export function oidContent(dotted: string): Uint8Array {
  return encodeOid(dotted).subarray(2);
}

/**
 * A DER value to encode: finished bytes, a constructed/primitive element over children,
 * or a hole: `length` bytes written later by the caller (a large encryptedContent that is
 * encrypted straight into the output instead of being built first and copied in).
 */
export type DerNode = Uint8Array | { tag: number; children: DerNode[] } | DerHole;
export interface DerHole {
  hole: number;
}

function isHole(node: DerNode): node is DerHole {
  return !(node instanceof Uint8Array) && 'hole' in node;
}

function nodeLength(node: DerNode): number {
  if (node instanceof Uint8Array) return node.length;
  if (isHole(node)) return node.hole;
  let content = 0;
  for (const child of node.children) content += nodeLength(child);
  return 1 + encodeLength(content).length + content;
}

/**
 * Encodes a tree with at most one hole into the bytes before it and the bytes after it,
 * so that head ‖ hole content ‖ tail is the DER. Nothing the size of the hole is allocated.
 */
export function encodeTreeAround(root: DerNode): {
  head: Uint8Array;
  holeLength: number;
  tail: Uint8Array;
} {
  const total = nodeLength(root);
  const parts: Uint8Array[] = [];
  let pending: number[] = [];
  let holeLength = -1;
  const flush = () => {
    if (pending.length > 0) parts.push(Uint8Array.from(pending));
    pending = [];
  };
  const write = (node: DerNode): void => {
    if (node instanceof Uint8Array) {
      flush();
      parts.push(node);
      return;
    }
    if (isHole(node)) {
      if (holeLength !== -1)
        throw new RecryptError('invalid-argument', 'a DER tree may hold one hole');
      flush();
      holeLength = node.hole;
      parts.push(HOLE_MARK);
      return;
    }
    let content = 0;
    for (const child of node.children) content += nodeLength(child);
    pending.push(node.tag, ...encodeLength(content));
    for (const child of node.children) write(child);
  };
  write(root);
  flush();
  const at = parts.indexOf(HOLE_MARK);
  const join = (list: Uint8Array[]) => {
    const out = new Uint8Array(list.reduce((n, part) => n + part.length, 0));
    let offset = 0;
    for (const part of list) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  };
  const head = join(at === -1 ? parts : parts.slice(0, at));
  const tail = join(at === -1 ? [] : parts.slice(at + 1));
  holeLength = Math.max(holeLength, 0);
  if (head.length + holeLength + tail.length !== total) {
    throw new RecryptError('invalid-argument', 'DER tree lengths do not add up');
  }
  return { head, holeLength, tail };
}

const HOLE_MARK = new Uint8Array(0);

/** Encodes a tree without holes into one buffer. */
export function encodeTree(root: DerNode): Uint8Array {
  const { head, holeLength } = encodeTreeAround(root);
  if (holeLength !== 0) throw new RecryptError('invalid-argument', 'encodeTree cannot fill a hole');
  return head;
}
