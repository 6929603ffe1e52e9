/**
 * Line counts made a slice at a time (src/store/mime/line-count.ts) against the direct
 * count, for any range of any message, and the structure of a message larger than one
 * counting slice parsed both ways.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SliceLineCounts, countLinesIn } from '../../src/store/mime/line-count.js';
import { parseMessageStructure } from '../../src/store/mime/structure.js';
import { parseStructureYielding } from '../../src/store/maildir/structure-parse.js';

function counted(bytes: Uint8Array, budget: number): SliceLineCounts {
  const counts = new SliceLineCounts(bytes);
  while (!counts.done) counts.countNext(budget);
  return counts;
}

describe('SliceLineCounts', () => {
  it('answers every range as the direct count does', () => {
    const message = fc
      .tuple(fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 1, max: 200 }), fc.integer())
      .map(([length, lineLength, seed]) => {
        const bytes = new Uint8Array(length).fill(0x41);
        let state = seed >>> 0;
        for (let i = 0; i < length; i++) {
          state = (state * 1103515245 + 12345) >>> 0;
          if (state % lineLength === 0) bytes[i] = 0x0a;
        }
        return bytes;
      });
    fc.assert(
      fc.property(
        message,
        fc.integer({ min: 1, max: 1 << 20 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 20 }),
        (bytes, budget, ranges) => {
          const counter = counted(bytes, budget).counter();
          for (const [a, b] of ranges) {
            const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
            const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
            expect(counter({ start, end })).toBe(countLinesIn(bytes, start, end));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses to answer before every slice is counted', () => {
    const counts = new SliceLineCounts(new Uint8Array(200_000));
    counts.countNext(64 * 1024);
    expect(counts.done).toBe(false);
    expect(() => counts.counter()).toThrow(/not finished/);
  });
});

describe('parseStructureYielding', () => {
  it('gives the structure parseMessageStructure gives, for a multi-megabyte message', async () => {
    const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n';
    const body = line.repeat(40_000);
    const text =
      'From: a@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' +
      `--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n` +
      `--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}` +
      '--b--\r\n';
    const bytes = Buffer.from(text, 'latin1');
    expect(bytes.length).toBeGreaterThan(2 * 1024 * 1024); // more than one turn's counting
    const structure = await parseStructureYielding(bytes);
    expect(structure).toEqual(parseMessageStructure(bytes));
    // The last line break belongs to the boundary after it (RFC 2046 §5.1.1).
    expect(structure.root.parts[1]!.lines).toBe(39_999);
  });
});
