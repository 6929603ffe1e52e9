import type { ByteRange } from './types.js';

/**
 * Line counts for BODYSTRUCTURE's `lines` (RFC 3501: the number of LF-terminated lines of
 * a part's body). Counting is one native indexOf per line, so a 50 MiB message (about
 * 900,000 base64 lines) costs the event loop tens of milliseconds at once. SliceLineCounts
 * counts a large message a slice at a time, so that its caller can yield between slices,
 * and then answers any range from the per-slice totals plus at most two partial slices.
 */

const LF = 0x0a;

export type LineCounter = (range: ByteRange) => number;

export function countLinesIn(bytes: Uint8Array, start: number, end: number): number {
  let n = 0;
  let i = bytes.indexOf(LF, start);
  while (i !== -1 && i < end) {
    n++;
    i = bytes.indexOf(LF, i + 1);
  }
  return n;
}

export function directLineCounter(bytes: Uint8Array): LineCounter {
  return (range) => countLinesIn(bytes, range.start, range.end);
}

const SLICE = 64 * 1024;

export class SliceLineCounts {
  /** before[i]: LFs in slices 0..i-1. */
  private readonly before: Uint32Array;
  private counted = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.before = new Uint32Array(Math.ceil(bytes.length / SLICE) + 1);
  }

  get done(): boolean {
    return this.counted === this.before.length - 1;
  }

  /** Counts the next slices covering about `budgetBytes`. */
  countNext(budgetBytes: number): void {
    const slices = Math.max(1, Math.floor(budgetBytes / SLICE));
    const last = Math.min(this.before.length - 1, this.counted + slices);
    for (; this.counted < last; this.counted++) {
      const start = this.counted * SLICE;
      const end = Math.min(this.bytes.length, start + SLICE);
      this.before[this.counted + 1] =
        this.before[this.counted]! + countLinesIn(this.bytes, start, end);
    }
  }

  /** The counter over the finished counts (every slice counted first). */
  counter(): LineCounter {
    if (!this.done) throw new Error('line counts are not finished');
    return ({ start, end }) => {
      const firstWhole = Math.ceil(start / SLICE);
      const lastWhole = Math.floor(end / SLICE); // slices [firstWhole, lastWhole) are whole
      if (firstWhole >= lastWhole) return countLinesIn(this.bytes, start, end);
      return (
        countLinesIn(this.bytes, start, firstWhole * SLICE) +
        this.before[lastWhole]! -
        this.before[firstWhole]! +
        countLinesIn(this.bytes, lastWhole * SLICE, end)
      );
    };
  }
}
