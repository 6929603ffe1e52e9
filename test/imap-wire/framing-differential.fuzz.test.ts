/**
 * The proxy and the embedded store must agree on where every command ends
 * (docs/threat-model.md, "Limits"): 20,000 random and adversarial client byte streams,
 * split into random chunks, go through the real client relay into the real store input
 * (test/helpers/framing-pair.ts); both must report the same command boundaries, a
 * read-only (list archive) session must never run a write, and no APPEND may reach the
 * store unencrypted. Adversarial pieces: lines of 65,535/65,536/65,537 bytes (and at the
 * relay's own cap) ending in literal announcements, literals after long lines, IDLE and
 * DONE interleavings, literal announcements the store and Dovecot read differently.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RELAY_LINE_CAP } from '../../src/imap/client-relay.js';
import { literalAtEnd } from '../../src/imap-wire/framer.js';
import { commandName, runPair, WRITE_COMMANDS, type PairResult } from '../helpers/framing-pair.js';

const tag = fc.constantFrom('a', 'b1', 'T', 'x.y', '*', '+', 'DONE', 'done');
const name = fc.constantFrom(
  'NOOP',
  'IDLE',
  'idle',
  'IDLE x',
  'STORE 1 +FLAGS (\\Deleted)',
  'UID STORE 1 +FLAGS \\Seen',
  'EXPUNGE',
  'UID EXPUNGE 1',
  'APPEND INBOX',
  'APPEND INBOX (\\Seen)',
  'SELECT INBOX',
  'SELECT',
  'AUTHENTICATE PLAIN',
  'FETCH 1 BODY[]',
  'COPY 1 X',
  'LIST ""',
  'SEARCH TEXT',
);
const announce = fc.oneof(
  fc.constant(''),
  fc.nat({ max: 80 }).map((n) => ` {${n}}`),
  fc.nat({ max: 80 }).map((n) => ` {${n}+}`),
  fc.nat({ max: 80 }).map((n) => `x{${n}+}`),
  fc.nat({ max: 80 }).map((n) => ` "q {${n}+}`),
  fc.constantFrom(' {99999999999+}', ' {99999999999}', ' {0}', ' {0+}', ' {007+}'),
);
const eol = fc.constantFrom('\r\n', '\n', '\r\n', '\r\n');
const commandLine = fc.tuple(tag, name, announce, eol).map(([t, n, a, e]) => `${t} ${n}${a}${e}`);
const data = fc
  .array(
    fc.oneof(
      fc.constantFrom('PLAINTEXT', 'DONE\r\n', '\r\n', '{5+}\r\n', '{3}\r\n', ' ', 'z'),
      commandLine,
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(''));
const longLine = fc
  .tuple(
    fc.constantFrom(65535, 65536, 65537, RELAY_LINE_CAP, RELAY_LINE_CAP + 1),
    fc.constantFrom('', '{5+}', '{5}', '{40+}'),
    fc.constantFrom('a NOOP ', '', 'DONE'),
  )
  .map(([length, suffix, start]) => {
    const filler = 'x'.repeat(Math.max(0, length - start.length - suffix.length));
    return `${start}${filler}${suffix}\r\n`;
  });
const bytes = fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString('latin1'));

function stream(long: boolean): fc.Arbitrary<{ text: string; cuts: number[] }> {
  const piece = long
    ? fc.oneof({ arbitrary: longLine, weight: 2 }, { arbitrary: commandLine, weight: 3 }, data)
    : fc.oneof(
        { arbitrary: commandLine, weight: 6 },
        { arbitrary: data, weight: 3 },
        { arbitrary: fc.constant('DONE\r\n'), weight: 2 },
        { arbitrary: bytes, weight: 1 },
      );
  return fc
    .tuple(
      fc.array(piece, { minLength: 1, maxLength: long ? 4 : 12 }),
      fc.array(fc.nat(), { maxLength: 8 }),
    )
    .map(([pieces, cuts]) => ({ text: pieces.join(''), cuts }));
}

function chunked(text: string, cuts: number[]): Buffer[] {
  const all = Buffer.from(text, 'latin1');
  const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, all.length]) {
    if (p > from) chunks.push(all.subarray(from, p));
    from = Math.max(from, p);
  }
  return chunks;
}

/** The literal contents of a whole command as the store read it (line CRLF literal …). */
function literals(command: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const crlf = command.indexOf('\r\n', at);
    if (crlf === -1) return out;
    const announced = literalAtEnd(command.subarray(at, crlf));
    if (announced === null) return out;
    out.push(command.subarray(crlf + 2, crlf + 2 + announced.size));
    at = crlf + 2 + announced.size;
  }
}

function checkAgreement(r: PairResult, readOnly: boolean, encrypt: boolean): void {
  if (r.storeStopped) {
    expect(r.relayCommands.slice(0, r.storeCommands.length)).toEqual(r.storeCommands);
  } else if (r.storeCommands.length === r.relayCommands.length - 1) {
    // The stream ended inside the last command (its literal is still awaited).
    expect(r.storeCommands).toEqual(r.relayCommands.slice(0, -1));
  } else {
    expect(r.storeCommands).toEqual(r.relayCommands);
  }
  for (const command of r.executed) {
    const name = commandName(command);
    if (readOnly) expect(WRITE_COMMANDS.has(name), command.toString('latin1')).toBe(false);
    if (encrypt && name === 'APPEND')
      for (const literal of literals(command))
        expect(literal.toString('latin1'), command.toString('latin1')).toMatch(/^ENC:/);
  }
}

describe('proxy and store frame every client byte stream the same way', () => {
  it('16,000 short streams (commands, literals, IDLE/DONE, raw bytes), randomly chunked', async () => {
    await fc.assert(
      fc.asyncProperty(stream(false), fc.boolean(), fc.boolean(), async (s, readOnly, encrypt) => {
        const r = await runPair(chunked(s.text, s.cuts), { readOnly, encrypt });
        checkAgreement(r, readOnly, encrypt);
      }),
      { numRuns: 16_000 },
    );
  }, 600_000);

  it('4,000 streams with lines at 65,535/65,536/65,537 bytes and at the relay cap, literals after them', async () => {
    await fc.assert(
      fc.asyncProperty(stream(true), fc.boolean(), async (s, readOnly) => {
        const r = await runPair(chunked(s.text, s.cuts), { readOnly, encrypt: true });
        checkAgreement(r, readOnly, true);
      }),
      { numRuns: 4_000 },
    );
  }, 600_000);

  it('the two reported attacks, split at every chunk boundary', async () => {
    const attacks = [
      // A line of exactly 65,536 bytes and a short tail ending in a LITERAL+ announcement.
      `a NOOP ${'x'.repeat(65536 - 7)}\r\nb NOOP {40+}\r\nc STORE 1 +FLAGS (\\Deleted)\r\nd EXPUNGE\r\n`,
      // IDLE: the store reads one line as DONE; that line announces a literal.
      'i IDLE\r\nj NOOP {30+}\r\nk STORE 1 +FLAGS (\\Deleted)\r\n',
      'i IDLE\r\nDONE\r\nk UID EXPUNGE 1\r\n',
      'i idle {20+}\r\nk UID EXPUNGE 1\r\nm APPEND INBOX {9+}\r\nPLAINTEXT\r\n',
    ];
    for (const text of attacks) {
      const all = Buffer.from(text, 'latin1');
      // Every boundary of the short tail and around the cap (every one of 65 K is needless).
      const points = [...Array(all.length + 1).keys()].filter(
        (p) => p < 200 || p > all.length - 200 || Math.abs(p - 65536) < 64,
      );
      for (const p of points) {
        const chunks = [all.subarray(0, p), all.subarray(p)].filter((c) => c.length > 0);
        for (const readOnly of [true, false]) {
          const r = await runPair(chunks, { readOnly, encrypt: true });
          checkAgreement(r, readOnly, true);
          if (readOnly) expect(r.executed.map(commandName)).not.toContain('STORE');
        }
      }
    }
  }, 600_000);
});
