import type { Tokens } from './tokens.js';

/** `*` in a sequence set: the largest number in use. */
export const STAR = -1;

/** One `a:b` range as written (either end may be STAR; order not normalised). */
export type SequenceRange = [number, number];
export type SequenceSet = SequenceRange[];

/**
 * sequence-set = (seq-number / seq-range) ["," sequence-set]
 * seq-number   = nz-number / "*"
 * seq-range    = seq-number ":" seq-number
 * (The "$" of RFC 5182 SEARCHRES is not offered.)
 */
export function parseSequenceSet(t: Tokens): SequenceSet {
  const set: SequenceSet = [];
  do {
    const a = seqNumber(t);
    const b = t.tryChar(':') ? seqNumber(t) : a;
    set.push([a, b]);
    if (set.length > 10_000) t.fail('shorter sequence set');
  } while (t.tryChar(','));
  return set;
}

function seqNumber(t: Tokens): number {
  if (t.tryChar('*')) return STAR;
  return t.nzNumber();
}

/**
 * The members of `set` among `values` (ascending), with STAR meaning `max`. For
 * sequence numbers `values` is 1..n; for UIDs it is the session's known UIDs, so ranges
 * that name no existing UID select nothing, as RFC 3501 §6.4.8 asks.
 */
export function matchSet(set: SequenceSet, max: number, value: number): boolean {
  for (const [a0, b0] of set) {
    const a = a0 === STAR ? max : a0;
    const b = b0 === STAR ? max : b0;
    if (value >= Math.min(a, b) && value <= Math.max(a, b)) return true;
  }
  return false;
}

/** Formats numbers as a compact sequence set (`1:3,7`), for COPYUID / APPENDUID. */
export function formatSet(values: number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < values.length) {
    const start = values[i] as number;
    let end = start;
    while (i + 1 < values.length && values[i + 1] === end + 1) end = values[++i] as number;
    parts.push(start === end ? `${start}` : `${start}:${end}`);
    i++;
  }
  return parts.join(',');
}
