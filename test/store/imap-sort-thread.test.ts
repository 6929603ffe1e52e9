import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseSubject } from '../../src/store/imap/handlers/base-subject.js';
import { appendAll, tangledMails, threadMails, untagged } from '../helpers/store-extensions.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * SORT and THREAD (RFC 5256) on the embedded store over a real socket. The expected
 * answers are Dovecot's for the same mailbox (test/store/imap-extensions-dovecot.test.ts
 * runs both); the comments say why each is right by the RFC.
 */
describe('base subject (RFC 5256 §2.1)', () => {
  it.each([
    ['Re: Lunch', 'Lunch', true],
    ['RE:Lunch', 'Lunch', true],
    ['Fwd: Re: fw: Lunch', 'Lunch', true],
    ['[team] Re: [team] RE: Lunch', 'Lunch', true],
    ['Re [team]: Lunch', 'Lunch', true],
    ['Lunch (fwd)', 'Lunch', true],
    ['Lunch (fwd) (FWD)  ', 'Lunch', true],
    ['[fwd: Re: Lunch]', 'Lunch', true],
    ['[fwd: [fwd: Lunch]]', 'Lunch', true],
    ['[team] Lunch', 'Lunch', false],
    // a blob that would leave nothing stays (step 4)
    ['[team]', '[team]', false],
    ['Re: [team]', '[team]', true],
    ['Holiday \t  plans', 'Holiday plans', false],
    ['Holiday\r\n plans', 'Holiday plans', false],
    ['=?UTF-8?Q?Re=3A_Caf=C3=A9?=', 'Café', true],
    ['=?UTF-8?B?UmU6IA==?= =?UTF-8?Q?Caf=C3=A9?=', 'Café', true],
    ['Report: Q3', 'Report: Q3', false],
    ['Re:', '', true],
    ['', '', false],
  ])('%j → %j', (raw, base, reply) => {
    expect(baseSubject(raw)).toEqual({ base, reply });
  });

  it('reads a missing Subject as empty', () => {
    expect(baseSubject(null)).toEqual({ base: '', reply: false });
  });
});

describe('SORT and THREAD over the wire', () => {
  let s: StoreServer;
  let w: Wire;

  beforeAll(async () => {
    s = await startStoreServer(['alice']);
    w = await Wire.open(s.server.port);
    expect(await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
    await appendAll(w, 'INBOX', threadMails());
    expect(await w.command('s', 'SELECT INBOX')).toMatch(/\* 10 EXISTS/);
  });

  afterAll(async () => {
    w?.close();
    await s?.stop();
  });

  async function ask(line: string): Promise<string[]> {
    const reply = await w.command('t', line);
    expect(reply).toMatch(/^t OK/m);
    return untagged(reply);
  }

  it.each([
    // base subjects: "" (10), Budget (4 5 6), Café (9), Holiday plans (7 8), Lunch (1 2 3); ties by sequence number
    ['SORT (SUBJECT) UTF-8 ALL', '* SORT 10 4 5 6 9 7 8 1 2 3'],
    // sent dates in UTC; 6 has no Date header, so its INTERNALDATE (6 Mar) counts; 8 and 9 tie on date
    ['SORT (DATE) UTF-8 ALL', '* SORT 8 9 7 2 1 3 4 5 6 10'],
    ['SORT (REVERSE DATE) UTF-8 ALL', '* SORT 10 6 5 4 3 1 2 7 8 9'],
    ['SORT (ARRIVAL) UTF-8 ALL', '* SORT 7 2 1 3 4 5 6 8 9 10'],
    // addr-mailbox of the first From: alice, bob (2 7 9), carol, dave, erin, frank, grace, heidi
    ['SORT (FROM) UTF-8 ALL', '* SORT 3 2 7 9 1 4 5 6 8 10'],
    // no Cc sorts as "" first; then amy (3), zed (1)
    ['SORT (CC) UTF-8 ALL', '* SORT 2 4 5 6 7 8 9 10 3 1'],
    ['SORT (REVERSE SIZE) UTF-8 ALL', '* SORT 1 4 3 5 10 8 9 7 2 6'],
    ['UID SORT (REVERSE FROM ARRIVAL) UTF-8 SUBJECT Budget', '* SORT 6 5 4'],
    ['SORT (SUBJECT) UTF-8 DELETED', '* SORT'],
  ])('%s', async (line, expected) => {
    expect(await ask(line)).toEqual([expected]);
  });

  it.each([
    // one thread per base subject, its earliest message the parent of the others
    ['THREAD ORDEREDSUBJECT UTF-8 ALL', '* THREAD (8 7)(9)(2 (1)(3))(4 (5)(6))(10)'],
    // 2 → 1 → 3 by References; 4 and 5 share a missing parent (a dummy, kept at the root
    // with two children); 6 joins them by subject, being a forward; 7 is a forward of 8's
    // subject; 9 repeats 2's Message-ID and stands alone; 10 refers to itself (no loop)
    ['THREAD REFERENCES UTF-8 ALL', '* THREAD (8 7)(9)(2 1 3)((4)(5)(6))(10)'],
    // only matching messages are threaded: without 1 (Carol), 3 still descends from 2
    ['UID THREAD REFERENCES UTF-8 NOT FROM carol', '* THREAD (8 7)(9)(2 3)((4)(5)(6))(10)'],
    // 3's References name 1 directly; 2 (Bob) is left out, so its dummy is pruned
    ['THREAD REFERENCES UTF-8 SUBJECT Lunch NOT FROM bob', '* THREAD (1 3)'],
    ['THREAD ORDEREDSUBJECT UTF-8 DELETED', '* THREAD'],
  ])('%s', async (line, expected) => {
    expect(await ask(line)).toEqual([expected]);
  });

  it('threads references that disagree without loops (RFC 5256 REFERENCES step 1)', async () => {
    await appendAll(w, 'Drafts', tangledMails());
    await w.command('s', 'SELECT Drafts');
    // x (1) and y (2) name each other: 1 comes first and goes under y; 2 naming x would
    // close a loop, so that link is dropped. 8 names itself, then x: it goes under x. The
    // chain is rebuilt whatever the arrival order; 7's References (not its In-Reply-To)
    // decide its parent. 9 and 10 hang off missing messages and join 11 by subject, as
    // replies; 12's In-Reply-To (its first id) makes it 11's child; 13 repeats 11's
    // Message-ID, so it gets its own and joins by subject.
    expect(await ask('THREAD REFERENCES UTF-8 ALL')).toEqual([
      '* THREAD (2 1 8)(11 (9)(10)(12)(13))(5 4 3 6 7)',
    ]);
    expect(await ask('THREAD ORDEREDSUBJECT UTF-8 ALL')).toEqual([
      '* THREAD (1 2)(8)(9 (10)(11)(12)(13))(5 (4)(3)(6)(7))',
    ]);
    await w.command('s', 'SELECT INBOX');
  });

  it.each([
    'SORT SUBJECT UTF-8 ALL',
    'SORT (SUBJECT) ALL',
    'SORT (REVERSE) UTF-8 ALL',
    'SORT (SENDER) UTF-8 ALL',
    'SORT () UTF-8 ALL',
    'THREAD XREFS UTF-8 ALL',
    'THREAD REFERENCES UTF-8',
    'UID THREAD REFERENCES',
  ])('answers BAD to %s', async (line) => {
    const b = await Wire.open(s.server.port);
    await b.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    await b.command('s', 'SELECT INBOX');
    expect(await b.command('b', line)).toMatch(/^b BAD /m);
    b.close();
  });

  it('answers NO [BADCHARSET] for a charset it cannot read', async () => {
    expect(await w.command('b', 'SORT (DATE) KOI8-R ALL')).toMatch(/^b NO \[BADCHARSET/m);
    expect(await w.command('b', 'THREAD REFERENCES ISO-2022-JP ALL')).toMatch(
      /^b NO \[BADCHARSET/m,
    );
  });

  it('is refused before SELECT', async () => {
    const b = await Wire.open(s.server.port);
    await b.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    expect(await b.command('n', 'SORT (DATE) UTF-8 ALL')).toMatch(/^n BAD /m);
    b.close();
  });
});
