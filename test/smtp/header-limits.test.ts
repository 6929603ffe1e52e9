/**
 * The header scanner (header-limits.ts) refuses or passes a message the same way however
 * DATA is cut into chunks (which cap it names first may differ when one chunk passes
 * two), and counts the header section only: never the blank line or the body.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderScanner, type HeaderLimits } from '../../src/smtp/header-limits.js';

const limits: HeaderLimits = { maxHeaderBytes: 200, maxHeaderLines: 6, maxHeaderFieldBytes: 60 };

function verdict(message: string, cuts: number[]): string | undefined {
  const bytes = Buffer.from(message, 'latin1');
  const scanner = new HeaderScanner(limits);
  let at = 0;
  for (const cut of [
    ...cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b),
    bytes.length,
  ]) {
    if (cut < at) continue;
    scanner.push(bytes.subarray(at, cut));
    at = cut;
  }
  return scanner.violation;
}

const cases: [string, string, string | undefined][] = [
  ['small header, large body', `A: 1\r\nB: 2\r\n\r\n${'body line\r\n'.repeat(100)}`, undefined],
  ['exactly 6 lines', 'A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\nbody', undefined],
  ['7 lines', 'A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n\r\nbody', 'header-lines'],
  ['bare LF lines', 'A: 1\nB: 2\nC: 3\nD: 4\nE: 5\nF: 6\nG: 7\n\nbody', 'header-lines'],
  ['field of exactly 60 bytes', `S: ${'x'.repeat(20)}\r\n ${'y'.repeat(32)}\r\n\r\n`, undefined],
  ['field of 61 bytes', `S: ${'x'.repeat(20)}\r\n ${'y'.repeat(33)}\r\n\r\n`, 'field-bytes'],
  ['one endless line', `S: ${'x'.repeat(500)}`, 'field-bytes'],
  ['exactly 200 bytes', `${`A: ${'a'.repeat(45)}\r\n`.repeat(4)}\r\nbody`, undefined],
  [
    '201 bytes',
    `${`A: ${'a'.repeat(45)}\r\n`.repeat(3)}A: ${'a'.repeat(46)}\r\n\r\nbody`,
    'header-bytes',
  ],
];

describe('HeaderScanner', () => {
  for (const [name, message, expected] of cases) {
    it(`${name}: ${expected ?? 'within the caps'}; refused or not alike for any chunking`, () => {
      expect(verdict(message, [])).toBe(expected);
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
          expect(verdict(message, cuts) !== undefined).toBe(expected !== undefined);
        }),
        { numRuns: 200 },
      );
    });
  }
});
