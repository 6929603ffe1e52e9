/**
 * The tokens of an untagged FETCH response line that the response rewriter
 * (response-rewriter.ts) needs: the items at the top level of its parenthesised list, so
 * that it knows which item a literal that ends the line belongs to, and the UID when it
 * comes before. Byte by byte and without buffering the line (it may be long): quoted
 * strings, brackets and parentheses tracked, atoms capped at ATOM_CAP characters.
 */
const ATOM_CAP = 600;

export interface FetchState {
  /** The message sequence number of `* n FETCH`: what a UID-less partial is resolved by. */
  seq: number | undefined;
  uid: number | undefined;
  depth: number;
  bracket: number;
  inQuote: boolean;
  escape: boolean;
  curr: string;
  prev: string;
}

export function newFetch(): FetchState {
  return {
    seq: undefined,
    uid: undefined,
    depth: 0,
    bracket: 0,
    inQuote: false,
    escape: false,
    curr: '',
    prev: '',
  };
}

function appendAtom(f: FetchState, c: number): void {
  if (f.curr.length < ATOM_CAP) f.curr += String.fromCharCode(c);
}

function finishAtom(f: FetchState): void {
  if (f.curr === '') return;
  if (f.depth === 1) {
    if (f.prev.toUpperCase() === 'UID' && /^\d{1,10}$/.test(f.curr)) f.uid = Number(f.curr);
    f.prev = f.curr;
  }
  f.curr = '';
}

/** Reads a FETCH line from `start`: the index of its LF, or -1 if it goes on past `chunk`. */
export function scanFetchLine(f: FetchState, chunk: Uint8Array, start: number): number {
  for (let i = start; i < chunk.length; i++) {
    const c = chunk[i]!;
    if (c === 10) return i;
    if (f.inQuote) {
      if (f.escape) f.escape = false;
      else if (c === 92) f.escape = true;
      else if (c === 34) f.inQuote = false;
    } else if (c === 13) {
      // part of the line ending
    } else if (f.bracket > 0) {
      appendAtom(f, c);
      if (c === 91) f.bracket++;
      else if (c === 93) f.bracket--;
    } else if (c === 34) {
      finishAtom(f);
      f.inQuote = true;
      f.curr = '"';
    } else if (c === 40) {
      finishAtom(f);
      f.depth++;
    } else if (c === 41) {
      finishAtom(f);
      f.depth--;
      if (f.depth === 1) f.prev = '()';
    } else if (c === 32) {
      finishAtom(f);
    } else {
      appendAtom(f, c);
      if (c === 91) f.bracket++;
    }
  }
  return -1;
}
