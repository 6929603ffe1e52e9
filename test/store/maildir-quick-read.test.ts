/**
 * Quick reads are slices of shared slabs (src/store/maildir/quick-read.ts): every read
 * returns exactly its file's bytes, also across slab boundaries, and later reads never
 * overwrite an earlier read still held; a file that is shorter than asked leaves no
 * stale bytes in the slice.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quickRead } from '../../src/store/maildir/quick-read.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('quick-read-');
afterAll(() => dir.remove());

describe('quick reads from slabs', () => {
  it('returns each file’s bytes, held reads untouched by later ones (more than one slab)', () => {
    const held: Array<{ bytes: Uint8Array; want: Buffer }> = [];
    // 80 files of 7–27 KB: about 1.3 MiB, three slabs of 512 KiB
    for (let i = 0; i < 80; i++) {
      const want = Buffer.alloc(7_000 + ((i * 257) % 20_000), String.fromCharCode(65 + (i % 26)));
      const path = join(dir.path, `m${i}`);
      writeFileSync(path, want);
      const bytes = quickRead(path, 0, want.length);
      expect(bytes).not.toBeNull();
      held.push({ bytes: bytes as Uint8Array, want });
    }
    for (const { bytes, want } of held) expect(Buffer.from(bytes).equals(want)).toBe(true);
  });

  it('a range of a file, and a file shorter than asked: only its bytes', () => {
    const path = join(dir.path, 'short');
    writeFileSync(path, 'abcdefghij');
    expect(Buffer.from(quickRead(path, 2, 5) as Uint8Array).toString()).toBe('cdefg');
    const short = quickRead(path, 0, 64) as Uint8Array;
    expect(Buffer.from(short).toString()).toBe('abcdefghij');
  });

  it('null for a file that does not exist', () => {
    expect(quickRead(join(dir.path, 'none'), 0, 10)).toBeNull();
  });
});
