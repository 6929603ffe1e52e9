/**
 * Base64 text ⇄ DER coordinates for the in-place transform. Decodes only a prefix of a
 * base64 body (any line length, CRLF or LF, other whitespace tolerated) and remembers
 * where each base64 character sits in the text, so that a change to DER bytes becomes a
 * change to the few characters that encode them, wherever the line breaks fall.
 */
import type { Edit } from './transform-types.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ENCODE = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
/** Character → 6-bit value; -1 whitespace (skipped), -2 anything else (end of base64). */
const DECODE = new Int8Array(256).fill(-2);
for (let i = 0; i < 64; i++) DECODE[ENCODE[i]!] = i;
for (const c of [0x20, 0x09, 0x0d, 0x0a, 0x0b, 0x0c]) DECODE[c] = -1;

export interface Base64Prefix {
  /** The decoded bytes (only whole 3-byte groups are ever relied on by callers). */
  der: Uint8Array;
  /** positions[k] = offset in the text of the k-th base64 character decoded. */
  positions: Int32Array;
  /** Characters decoded so far. */
  chars: number;
  /** Where in the text decoding stopped. */
  textEnd: number;
  /** Decoding stopped on padding or a non-base64 character: no more data follows. */
  ended: boolean;
}

/**
 * Decodes text[start…] until `maxBytes` bytes are out, the text ends, or base64 ends
 * (padding or a foreign character).
 */
export function decodeBase64Prefix(
  text: Uint8Array,
  start: number,
  maxBytes: number,
): Base64Prefix {
  const maxChars = Math.ceil(maxBytes / 3) * 4;
  const positions = new Int32Array(maxChars);
  const der = new Uint8Array((maxChars / 4) * 3);
  let chars = 0;
  let bits = 0;
  let acc = 0;
  let out = 0;
  let at = start;
  let ended = false;
  for (; at < text.length && chars < maxChars; at++) {
    const value = DECODE[text[at]!]!;
    if (value === -1) continue;
    if (value === -2) {
      ended = true;
      break;
    }
    positions[chars++] = at;
    acc = ((acc << 6) | value) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      der[out++] = (acc >> bits) & 0xff;
    }
  }
  return { der: der.subarray(0, out), positions, chars, textEnd: at, ended };
}

/**
 * Turns DER edits into text edits: each affected 3-byte group is re-encoded as four
 * characters at their recorded positions; adjacent characters merge into one edit.
 * Returns null when an edit touches a group the prefix does not hold in full.
 */
export function mapEditsToText(prefix: Base64Prefix, derEdits: readonly Edit[]): Edit[] | null {
  const patched = new Uint8Array(prefix.der);
  for (const edit of derEdits) patched.set(edit.bytes, edit.offset);
  const groups = new Set<number>();
  for (const edit of derEdits) {
    const first = Math.floor(edit.offset / 3);
    const last = Math.floor((edit.offset + edit.bytes.length - 1) / 3);
    for (let g = first; g <= last; g++) groups.add(g);
  }
  const sorted = [...groups].sort((a, b) => a - b);
  const edits: Edit[] = [];
  let run: number[] = [];
  let runStart = -1;
  let runEnd = -1;
  const flush = (): void => {
    if (run.length > 0) edits.push({ offset: runStart, bytes: Uint8Array.from(run) });
    run = [];
  };
  for (const g of sorted) {
    if (3 * g + 3 > patched.length || 4 * g + 4 > prefix.chars) return null;
    const triple = (patched[3 * g]! << 16) | (patched[3 * g + 1]! << 8) | patched[3 * g + 2]!;
    for (let k = 0; k < 4; k++) {
      const char = ENCODE[(triple >> (18 - 6 * k)) & 0x3f]!;
      const position = prefix.positions[4 * g + k]!;
      if (position !== runEnd) {
        flush();
        runStart = position;
      }
      run.push(char);
      runEnd = position + 1;
    }
  }
  flush();
  return edits;
}
