import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sentDayOf } from '../../src/store/mime/search-fields.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * Answers the RFCs fix exactly, each checked against what Debian's Dovecot 2.3 answers to
 * the same commands (test/store/imap-dovecot-diff.test.ts drives both at random). Each
 * test here failed on the code before its fix.
 */

const USER = 'alice';
let s: StoreServer;
const wires: Wire[] = [];

async function login(): Promise<Wire> {
  const w = await Wire.open(s.server.port);
  wires.push(w);
  expect(await w.command('l', `AUTHENTICATE PLAIN ${plain(USER)}`)).toMatch(/^l OK/m);
  return w;
}

function message(subject: string, date: string, extra = ''): string {
  return `From: Bob <bob@example.net>\r\nDate: ${date}\r\nSubject: ${subject}\r\n${extra}\r\nbody of ${subject}\r\n`;
}

async function append(w: Wire, mailbox: string, text: string): Promise<string> {
  w.send(`a APPEND ${mailbox} {${Buffer.byteLength(text)}+}\r\n${text}\r\n`);
  return w.until(/^a (OK|NO|BAD)[^\r\n]*\r\n/m);
}

beforeAll(async () => {
  s = await startStoreServer([USER]);
  const w = await login();
  await w.command('c', 'CREATE Rfc');
  // 1: late on 2 March in New York = 3 March in UTC; 2: has X-Empty (empty) and no Subject
  await append(w, 'Rfc', message('east', 'Mon, 02 Mar 2026 23:30:00 -0500'));
  await append(
    w,
    'Rfc',
    'From: c@example.net\r\nDate: Tue, 03 Mar 2026 01:00:00 +0200\r\nX-Empty:\r\n\r\nno subject\r\n',
  );
  await append(w, 'Rfc', message('plain', '4 Mar 26 12:00 GMT'));
  await w.command('x', 'LOGOUT');
});

afterAll(async () => {
  for (const w of wires) w.close();
  await s.stop();
});

describe('SEARCH', () => {
  it('SENTON / SENTBEFORE / SENTSINCE use the Date header’s own day, its zone ignored', async () => {
    const w = await login();
    await w.command('s', 'EXAMINE Rfc');
    expect(await w.command('a', 'SEARCH SENTON 2-Mar-2026')).toContain('* SEARCH 1\r\n');
    expect(await w.command('b', 'SEARCH SENTON 3-Mar-2026')).toContain('* SEARCH 2\r\n');
    expect(await w.command('c', 'SEARCH SENTBEFORE 3-Mar-2026')).toContain('* SEARCH 1\r\n');
    expect(await w.command('d', 'SEARCH SENTSINCE 3-Mar-2026')).toContain('* SEARCH 2 3\r\n');
    await w.command('x', 'LOGOUT');
  });

  it('reads day month year as written, two-digit years as RFC 5322 says', () => {
    expect(sentDayOf('Mon, 02 Mar 2026 23:30:00 -0500')).toBe(Date.UTC(2026, 2, 2));
    expect(sentDayOf('1 Jan 2027 00:30 +1400 (far east)')).toBe(Date.UTC(2027, 0, 1));
    expect(sentDayOf('4 Mar 26 12:00 GMT')).toBe(Date.UTC(2026, 2, 4));
    expect(sentDayOf('4 Mar 99 12:00 GMT')).toBe(Date.UTC(1999, 2, 4));
    expect(sentDayOf('not a date')).toBeNull();
  });

  it('HEADER <field> "" matches exactly the messages that have the field', async () => {
    const w = await login();
    await w.command('s', 'EXAMINE Rfc');
    expect(await w.command('a', 'SEARCH HEADER Subject ""')).toContain('* SEARCH 1 3\r\n');
    expect(await w.command('b', 'SEARCH HEADER X-Empty ""')).toContain('* SEARCH 2\r\n');
    expect(await w.command('c', 'SEARCH HEADER X-Missing ""')).toContain('* SEARCH\r\n');
    expect(await w.command('d', 'SEARCH NOT HEADER Subject ""')).toContain('* SEARCH 2\r\n');
    await w.command('x', 'LOGOUT');
  });
});

describe('SEARCH HEADER on fields outside the envelope', () => {
  it('finds values that only appear once decoded, in another case, or after obsolete spacing', async () => {
    const w = await login();
    await w.command('c', 'CREATE Hdr');
    const bodies = [
      'X-Tag: =?utf-8?q?tag-42?=\r\n', // 1: only decoding shows it
      'X-Tag: TAG-42\r\n', // 2: another case
      'X-Tag : tag-42\r\n', // 3: space before the colon (RFC 5322 §4.5.3)
      'X-Tag: tag-7\r\nX-Other: tag-42\r\n', // 4: the value in another field
      'X-Tag: some\r\n tag-42\r\n', // 5: in a continuation line
      'X-Tagged: tag-42\r\n', // 6: a longer field name
    ];
    for (const extra of bodies)
      await append(w, 'Hdr', `From: a@example.net\r\nSubject: s\r\n${extra}\r\nbody\r\n`);
    await w.command('s', 'EXAMINE Hdr');
    expect(await w.command('a', 'SEARCH HEADER X-Tag tag-42')).toContain('* SEARCH 1 2 3 5\r\n');
    expect(await w.command('b', 'SEARCH HEADER X-Tag "some tag-42"')).toContain('* SEARCH 5\r\n');
    expect(await w.command('d', 'SEARCH HEADER X-Missing tag')).toContain('* SEARCH\r\n');
    await w.command('x', 'LOGOUT');
  });
});

describe('mailbox names that are not modified UTF-7', () => {
  it('SELECT answers NO and LIST answers OK with nothing listed (a valid astring is no syntax error)', async () => {
    const w = await login();
    expect(await w.command('a', 'SELECT "a&b"')).toMatch(/^a NO /m);
    const list = await w.command('b', 'LIST "" "a&b*"');
    expect(list).toMatch(/^b OK/m);
    expect(list).not.toMatch(/^\* LIST/m);
    expect(await w.command('c', 'LIST "&Jjo" "*"')).toMatch(/^c OK/m);
    expect(await w.command('d', 'CREATE "x&y"')).toMatch(/^d NO /m);
    expect(await w.command('e', 'STATUS "x&y" (MESSAGES)')).toMatch(/^e NO /m);
    await w.command('x', 'LOGOUT');
  });
});

describe('flags and moves', () => {
  it('STORE of a new keyword announces FLAGS and PERMANENTFLAGS first, to other sessions too', async () => {
    const a = await login();
    const b = await login();
    await a.command('s', 'SELECT Rfc');
    await b.command('s', 'SELECT Rfc');
    const store = await a.command('k', 'STORE 1 +FLAGS ($Fresh)');
    const flags = store.indexOf('* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh)');
    const permanent = store.indexOf(
      '* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh \\*)]',
    );
    const fetch = store.indexOf('* 1 FETCH (FLAGS ($Fresh');
    expect(flags).toBeGreaterThanOrEqual(0);
    expect(permanent).toBeGreaterThan(flags);
    expect(fetch).toBeGreaterThan(permanent);
    // a second STORE of the same keyword announces nothing again
    expect(await a.command('k2', 'STORE 2 +FLAGS ($Fresh)')).not.toContain('* FLAGS');
    const noop = await b.command('n', 'NOOP');
    expect(noop).toContain('* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh)');
    expect(noop.indexOf('* FLAGS')).toBeLessThan(noop.indexOf('* 1 FETCH'));
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });

  it('MOVE into the selected mailbox works (RFC 6851): COPYUID, EXPUNGE, then EXISTS', async () => {
    const w = await login();
    await w.command('c', 'CREATE Self');
    await append(w, 'Self', message('self 1', '1 Mar 2026 10:00 +0000'));
    await append(w, 'Self', message('self 2', '1 Mar 2026 10:00 +0000'));
    await w.command('s', 'SELECT Self');
    const move = await w.command('m', 'MOVE 1 Self');
    expect(move).toMatch(/^m OK/m);
    const copyuid = /\* OK \[COPYUID (\d+) 1 3\]/.exec(move);
    expect(copyuid).not.toBeNull();
    expect(move.indexOf('* 1 EXPUNGE')).toBeGreaterThan(move.indexOf('COPYUID'));
    expect(move.indexOf('* 2 EXISTS')).toBeGreaterThan(move.indexOf('* 1 EXPUNGE'));
    const fetch = await w.command('f', 'FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    expect(fetch).toMatch(/\* 1 FETCH \(UID 2 BODY\[[^\]]*\] \{\d+\}\r\nSubject: self 2/);
    expect(fetch).toMatch(/\* 2 FETCH \(UID 3 BODY\[[^\]]*\] \{\d+\}\r\nSubject: self 1/);
    await w.command('x', 'LOGOUT');
  });

  it('FETCH over a message another session expunged leaves it out: OK [EXPUNGEISSUED], as Dovecot', async () => {
    const a = await login();
    const b = await login();
    await a.command('c', 'CREATE Fx');
    for (const n of [1, 2, 3]) await append(a, 'Fx', message(`fx ${n}`, '1 Mar 2026 10:00 +0000'));
    await a.command('s', 'SELECT Fx');
    await b.command('s', 'SELECT Fx');
    await b.command('d', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
    await b.command('e', 'EXPUNGE');
    const fetch = await a.command('f', 'FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    expect(fetch).toMatch(/^f OK \[EXPUNGEISSUED\]/m);
    expect(fetch).not.toMatch(/^\* \d+ EXPUNGE/m);
    const bodies = [...fetch.matchAll(/^\* (\d+) FETCH \(BODY/gm)].map((m) => Number(m[1]));
    expect(bodies).toEqual([1, 3]);
    // nothing missing: a plain OK
    expect(await a.command('g', 'FETCH 1 (FLAGS)')).toMatch(/^g OK FETCH completed/m);
    expect(await a.command('n', 'NOOP')).toMatch(/^\* 2 EXPUNGE/m);
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });
});
