import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages } from '../helpers/store-messages.js';

/** Commands valid in the selected state, mutated: every reply must be OK/NO/BAD, never SERVERBUG, and the session lives on. */
const SEEDS = [
  'FETCH 1:* (FLAGS UID RFC822.SIZE)',
  'FETCH 2 (BODY.PEEK[1.2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10> BODYSTRUCTURE ENVELOPE)',
  'UID FETCH 1:3 (BODY.PEEK[3.TEXT] BODY.PEEK[2]<5.10>)',
  'SEARCH OR FROM bob NOT SUBJECT x SINCE 1-Jan-2026',
  'UID SEARCH CHARSET UTF-8 HEADER X-Priority 3 LARGER 10',
  'STORE 1:2 +FLAGS ($Label \\Flagged)',
  'UID STORE 1 -FLAGS.SILENT (\\Seen)',
  'COPY 1 Archive',
  'UID MOVE 9 Trash',
  'STATUS INBOX (MESSAGES UNSEEN UIDNEXT)',
  'LIST "" "%"',
  'CREATE "Fuzz/Box"',
  'RENAME "Fuzz/Box" "Fuzz/Other"',
  'EXPUNGE',
  'UID EXPUNGE 99',
  'NOOP',
  'NAMESPACE',
  'EXAMINE INBOX',
  'SELECT INBOX',
  'SEARCH RETURN (MIN MAX COUNT) FLAGGED',
  'UID SEARCH RETURN () CHARSET UTF-8 UNSEEN',
  'SORT (REVERSE SUBJECT DATE) UTF-8 ALL',
  'UID SORT (FROM ARRIVAL CC) US-ASCII NOT DELETED',
  'THREAD REFERENCES UTF-8 ALL',
  'UID THREAD ORDEREDSUBJECT UTF-8 SINCE 1-Jan-2020',
  'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))',
  'LIST (SPECIAL-USE) "" * RETURN (SUBSCRIBED)',
];
const FORBIDDEN = /LOGOUT|IDLE|AUTHENTICATE|STARTTLS|[{\r\n]/i;

describe('IMAP server under mutated commands', () => {
  let s: StoreServer;
  beforeAll(async () => {
    s = await startStoreServer(['alice'], { limits: { maxBadCommands: 1_000_000 } });
    for (const m of sampleMessages()) await s.store.deliver('alice', m);
  });
  afterAll(async () => {
    await s.stop();
  });

  it('answers 1,000 mutated commands without an internal error and stays usable', async () => {
    const cases = fc.sample(
      fc
        .tuple(
          fc.constantFrom(...SEEDS),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x20, max: 0x7e }), fc.boolean()), {
            maxLength: 4,
          }),
        )
        .map(([seed, edits]) => {
          let t = seed;
          for (const [pos, code, insert] of edits) {
            const i = pos % (t.length + 1);
            t = insert
              ? t.slice(0, i) + String.fromCharCode(code) + t.slice(i)
              : t.slice(0, i) + t.slice(i + 1);
          }
          return t;
        })
        .filter((t) => !FORBIDDEN.test(t)),
      { numRuns: 1_000, seed: 3501 },
    );
    const w = await Wire.open(s.server.port);
    try {
      expect(await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
      expect(await w.command('s', 'SELECT INBOX')).toMatch(/^s OK/m);
      const statuses: Record<string, number> = { OK: 0, NO: 0, BAD: 0 };
      const serverBugs: string[] = [];
      let i = 0;
      for (const c of cases) {
        const reply = await w.command(`z${i++}`, c);
        if (/SERVERBUG/.test(reply)) serverBugs.push(`${c} -> ${reply.slice(-200)}`);
        const status = /^z\d+ (OK|NO|BAD)/m.exec(reply)?.[1] as string;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (/^z\d+ OK/m.test(reply) && /^(CLOSE|UNSELECT)/i.test(c))
          await w.command('r', 'SELECT INBOX');
      }
      expect(serverBugs).toEqual([]);
      expect((statuses.OK ?? 0) + (statuses.NO ?? 0) + (statuses.BAD ?? 0)).toBe(cases.length);
      expect(statuses.OK).toBeGreaterThan(0);
      expect(statuses.BAD).toBeGreaterThan(0);
      expect(await w.command('end', 'NOOP')).toMatch(/^end OK/m);
    } finally {
      w.close();
    }
  });
});
