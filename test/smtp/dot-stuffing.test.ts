/**
 * RFC 5321 §4.5.2 transparency for the LMTP client's DATA: properties over arbitrary
 * bytes (fast-check) and the edge cases by name.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DotStuffer, dotStuff } from '../../src/smtp/dot-stuffing.js';

const stuffed = (input: string): string =>
  Buffer.concat(dotStuff(Buffer.from(input, 'latin1'))).toString('latin1');

/** What a receiver reconstructs: drop one leading dot of each line (the wire is CRLF-only). */
function unstuff(wire: string): string {
  return wire
    .split('\r\n')
    .map((line) => (line.startsWith('.') ? line.slice(1) : line))
    .join('\r\n');
}

/** The message as CRLF-normalized (bare LF → CRLF) and CRLF-terminated. */
function normalized(input: string): string {
  const crlf = input.replace(/\r?\n/g, '\r\n');
  if (crlf.length === 0 || crlf.endsWith('\r\n')) return crlf;
  return crlf.endsWith('\r') ? `${crlf}\n` : `${crlf}\r\n`;
}

const bytes = fc
  .array(fc.constantFrom('\r', '\n', '.', 'a', '\0', '\xff'), { maxLength: 200 })
  .map((chars) => chars.join(''));

describe('dotStuff', () => {
  it('named cases', () => {
    expect(stuffed('.a\r\nb\r\n.\r\n..c')).toBe('..a\r\nb\r\n..\r\n...c\r\n');
    expect(stuffed('a\nb\n')).toBe('a\r\nb\r\n');
    expect(stuffed('a\n.\n')).toBe('a\r\n..\r\n');
    expect(stuffed('')).toBe('');
    expect(stuffed('x\r')).toBe('x\r\n');
  });

  it('never contains the end-of-data sequence, ends in CRLF, and unstuffs to the normalized message', () => {
    fc.assert(
      fc.property(bytes, (input) => {
        const wire = stuffed(input);
        expect(`\r\n${wire}`.includes('\r\n.\r\n')).toBe(false);
        expect(wire === '' || wire.endsWith('\r\n')).toBe(true);
        expect(unstuff(wire)).toBe(normalized(input));
      }),
      { numRuns: 2000 },
    );
  });

  it('a CRLF message without leading dots is passed as slices of the input, not copied', () => {
    const input = Buffer.from('From: a\r\n\r\nbody line\r\n'.repeat(1000));
    const parts = dotStuff(input);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.buffer).toBe(input.buffer);
  });
});

describe('DotStuffer', () => {
  it('any cut of the message into pieces gives the same wire as the whole message', () => {
    fc.assert(
      fc.property(
        bytes,
        fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 10 }),
        (input, sizes) => {
          const data = Buffer.from(input, 'latin1');
          const stuffer = new DotStuffer();
          const parts: Buffer[] = [];
          // Empty pieces too; the 1 at the end keeps the cutting moving.
          const cuts = [...sizes, 1];
          for (let at = 0, i = 0; at < data.length; i++) {
            const size = cuts[i % cuts.length]!;
            parts.push(...stuffer.push(data.subarray(at, at + size)));
            at += size;
          }
          parts.push(...stuffer.end());
          expect(Buffer.concat(parts).toString('latin1')).toBe(stuffed(input));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
