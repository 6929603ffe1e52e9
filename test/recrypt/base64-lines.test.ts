import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Base64LineStream,
  Base64LineWriter,
  base64LinesLength,
} from '../../src/recrypt/base64-lines.js';

/** The plain definition: base64 of the whole input, cut into 76-character CRLF lines. */
function reference(input: Uint8Array): string {
  const text = Buffer.from(input).toString('base64');
  return (text.match(/.{1,76}/g) ?? []).map((line) => `${line}\r\n`).join('');
}

describe('Base64LineWriter', () => {
  it('writes RFC 2045 lines equal to encoding the whole input at once, whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 20 }),
        (input, sizes) => {
          const out = new Uint8Array(base64LinesLength(input.length) + 4);
          const writer = new Base64LineWriter(out, 2);
          for (let at = 0, i = 0; at < input.length; i++) {
            const size = sizes[i % sizes.length]!;
            writer.write(input.subarray(at, at + size));
            at += size;
          }
          writer.end();
          expect(writer.offset).toBe(2 + base64LinesLength(input.length));
          expect(Buffer.from(out.subarray(2, writer.offset)).toString('latin1')).toBe(
            reference(input),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('handles inputs larger than one batch of lines', () => {
    const input = new Uint8Array(57 * 1300 + 5).map((_, i) => (i * 7) & 0xff);
    const out = new Uint8Array(base64LinesLength(input.length));
    const writer = new Base64LineWriter(out, 0);
    writer.write(input);
    writer.end();
    expect(Buffer.from(out).toString('latin1')).toBe(reference(input));
  });
});

describe('Base64LineStream', () => {
  it('hands out, piece by piece, exactly the lines of encoding the whole input at once', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 20 }),
        (input, sizes) => {
          const stream = new Base64LineStream();
          const pieces: Buffer[] = [];
          // Empty pieces too; the 1 at the end keeps the cutting moving.
          const cuts = [...sizes, 1];
          for (let at = 0, i = 0; at < input.length; i++) {
            const size = cuts[i % cuts.length]!;
            const piece = stream.push(input.subarray(at, at + size));
            // Only whole lines come out before the end.
            expect(piece.length % 78).toBe(0);
            pieces.push(piece);
            at += size;
          }
          pieces.push(stream.end());
          const text = Buffer.concat(pieces).toString('latin1');
          expect(text.length).toBe(base64LinesLength(input.length));
          expect(text).toBe(reference(input));
        },
      ),
      { numRuns: 300 },
    );
  });
});
