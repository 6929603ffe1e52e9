import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/store/imap/index.js';
import { ParseError } from '../../src/store/imap/errors.js';
import { STORE_IMAP_FIXTURES } from '../helpers/store-messages.js';

interface Cases {
  valid: Array<{ line: string; expect: Record<string, unknown> }>;
  invalid: string[];
}
const cases = JSON.parse(
  readFileSync(join(STORE_IMAP_FIXTURES, 'parser-cases.json'), 'utf8'),
) as Cases;

function plainJson(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => (Buffer.isBuffer(v) ? undefined : v)),
  );
}

describe('IMAP command parser (RFC 3501 §9 formal syntax)', () => {
  for (const c of cases.valid) {
    it(`parses ${JSON.stringify(c.line.slice(0, 60))}`, () => {
      const cmd = parseCommand(Buffer.from(c.line, 'utf8'));
      expect(plainJson(cmd)).toMatchObject(c.expect);
    });
  }

  for (const line of cases.invalid) {
    it(`refuses ${JSON.stringify(line)} with a ParseError (BAD)`, () => {
      expect(() => parseCommand(Buffer.from(line, 'utf8'))).toThrow(ParseError);
    });
  }

  it('keeps APPEND literal bytes exactly, including CR LF and NUL', () => {
    const body = Buffer.from('Subject: x\r\n\r\n\u0000\xff', 'latin1');
    const cmd = parseCommand(
      Buffer.concat([Buffer.from(`t APPEND INBOX {${body.length}}\r\n`), body]),
    );
    expect(cmd.name === 'APPEND' && Buffer.compare(cmd.message, body)).toBe(0);
  });

  it('survives 20,000 random and mutated commands: only ParseError, bounded time', () => {
    const seeds = cases.valid.map((c) => Buffer.from(c.line, 'utf8'));
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.integer({ min: 0, max: 255 }),
            fc.constantFrom('set', 'insert', 'delete', 'cut'),
          ),
          { minLength: 1, maxLength: 6 },
        ),
      )
      .map(([seed, edits]) => {
        let b = Buffer.from(seed);
        for (const [pos, byte, op] of edits) {
          const i = b.length === 0 ? 0 : pos % b.length;
          if (op === 'set' && b.length > 0) b[i] = byte;
          else if (op === 'insert')
            b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
          else if (op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
          else b = b.subarray(0, i);
        }
        return b;
      });
    const random = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
    const tokens = fc
      .array(
        fc.constantFrom(
          'a1',
          ' ',
          'UID',
          'FETCH',
          'SEARCH',
          'STORE',
          '(',
          ')',
          '[',
          ']',
          '{3}\r\n',
          '{2+}\r\n',
          '"',
          '\\',
          '*',
          ':',
          ',',
          '1',
          'BODY',
          '.PEEK',
          'HEADER.FIELDS',
          'NOT',
          'OR',
          '<1.2>',
          'FLAGS',
          '+',
          'INBOX',
          '&',
          '-',
          '\u00e9',
        ),
        { maxLength: 40 },
      )
      .map((parts) => Buffer.from(parts.join(''), 'utf8'));
    let parsed = 0;
    let refused = 0;
    // A pathological input would hang here: the test's timeout is the bound.
    fc.assert(
      fc.property(fc.oneof(mutated, random, tokens), (input) => {
        try {
          parseCommand(input);
          parsed++;
        } catch (err) {
          if (!(err instanceof ParseError)) throw err;
          refused++;
        }
      }),
      { numRuns: 20_000, seed: 4 },
    );
    expect(parsed + refused).toBe(20_000);
    expect(parsed).toBeGreaterThan(0);
  });
});
