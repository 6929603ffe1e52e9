/**
 * Pieces of output as one buffer, without copying where it can be. Nearly every piece
 * the rewriter emits is a view into the upstream chunk itself (passed through, or patched
 * in place by the transform), in order, so adjacent views are one view of the same
 * memory. Copying them into a new buffer was a copy of every relayed byte and most of the
 * relay's garbage (its profile under bench/proxy.bench.ts's minimal reader). Views of one
 * memory that touch hold exactly the bytes a copy would, so no output byte changes; the
 * memory is the proxy's own (a socket read), which nothing writes after it is emitted.
 */
/**
 * `pieces` as one buffer: a view when they are adjacent views of one memory (the common
 * case), else a copy of the runs of adjacent views.
 */
export function joinViews(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0]!;
  const runs: Uint8Array[] = [];
  let first = pieces[0]!;
  let end = first.byteOffset + first.byteLength;
  for (let i = 1; i < pieces.length; i++) {
    const next = pieces[i]!;
    if (next.buffer === first.buffer && next.byteOffset === end) end += next.byteLength;
    else {
      runs.push(run(first, end));
      first = next;
      end = next.byteOffset + next.byteLength;
    }
  }
  runs.push(run(first, end));
  return runs.length === 1 ? runs[0]! : Buffer.concat(runs);
}

/** `first` extended to `end` in its memory (a function, not a closure per call). */
function run(first: Uint8Array, end: number): Uint8Array {
  return end === first.byteOffset + first.byteLength
    ? first
    : new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}
