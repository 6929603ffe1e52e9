import {
  linkSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * The embedded store under concurrent sessions: each test here failed on the code before
 * its fix (an APPEND with an old date lost to a concurrent SELECT's tmp/ clean-up, COPY
 * and FETCH of a vanished message answered NO [SERVERBUG], a stale flag update sent
 * after the session's own newer one).
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

function message(subject: string): string {
  return `From: Bob <bob@example.net>\r\nTo: ${USER}@example.com\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`;
}

async function append(w: Wire, mailbox: string, text: string, extra = ''): Promise<string> {
  w.send(`a APPEND ${mailbox}${extra} {${Buffer.byteLength(text)}+}\r\n${text}\r\n`);
  return w.until(/^a (OK|NO|BAD)[^\r\n]*\r\n/m);
}

const maildir = (folder = ''): string =>
  join(s.root, USER, 'Maildir', folder === '' ? '' : `.${folder}`);

/** The file of the message with this subject. */
function fileOf(subject: string, folder = ''): string {
  for (const sub of ['cur', 'new']) {
    const dir = join(maildir(folder), sub);
    for (const name of readdirSync(dir)) {
      const text = readFileSync(join(dir, name));
      if (text.includes(`Subject: ${subject}\r\n`)) return join(dir, name);
    }
  }
  throw new Error(`no file for ${subject}`);
}

beforeAll(async () => {
  s = await startStoreServer([USER]);
});

afterAll(async () => {
  for (const w of wires) w.close();
  await s.stop();
});

describe('APPEND with an old INTERNALDATE and a concurrent SELECT (tmp/ clean-up)', () => {
  it('a file in tmp/ whose mtime is years old but which was just written survives a rescan', async () => {
    const w = await login();
    await w.command('c', 'CREATE Scan');
    // an APPEND in flight: written to tmp/ with the INTERNALDATE as mtime, not yet renamed
    const inFlight = join(maildir('Scan'), 'tmp', '1000000000.M1P1Q1.test,S=10');
    writeFileSync(inFlight, 'in flight\n');
    const old = new Date('2001-09-09T01:46:40Z');
    utimesSync(inFlight, old, old);
    // a COPY in flight: a hard link of an old message keeps the old mtime
    expect(await append(w, 'Scan', message('old one'), ' "09-Sep-2001 01:46:40 +0000"')).toMatch(
      /^a OK/m,
    );
    const linked = join(maildir('Scan'), 'tmp', '1000000001.M2P1Q2.test,S=10');
    linkSync(fileOf('old one', 'Scan'), linked);
    expect(statSync(linked).mtime.getTime()).toBe(old.getTime());

    // no session has Scan open, so SELECT rescans it (and cleans tmp/)
    expect(await w.command('s', 'SELECT Scan')).toMatch(/^s OK/m);
    expect(readdirSync(join(maildir('Scan'), 'tmp')).sort()).toEqual(
      ['1000000000.M1P1Q1.test,S=10', '1000000001.M2P1Q2.test,S=10'].sort(),
    );
    rmSync(inFlight);
    rmSync(linked);
    await w.command('x', 'LOGOUT');
  });

  it('every APPEND dated 2001 succeeds while another session SELECTs and CLOSEs in a loop', async () => {
    const a = await login();
    const b = await login();
    await a.command('c', 'CREATE Race');
    const rounds = 60;
    let stop = false;
    const selects = (async () => {
      let n = 0;
      while (!stop) {
        await b.command(`s${n}`, 'SELECT Race');
        await b.command(`c${n}`, 'CLOSE');
        n++;
      }
    })();
    const replies: string[] = [];
    for (let i = 0; i < rounds; i++)
      replies.push(await append(a, 'Race', message(`race ${i}`), ' "09-Sep-2001 01:46:40 +0000"'));
    stop = true;
    await selects;
    expect(replies.filter((r) => !/^a OK/m.test(r))).toEqual([]);
    expect(await a.command('t', 'STATUS Race (MESSAGES)')).toContain(`(MESSAGES ${rounds})`);
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });
});

describe('messages that vanish under a command', () => {
  it('COPY of a message whose file is gone answers NO [EXPUNGEISSUED] and copies nothing', async () => {
    const w = await login();
    await w.command('c', 'CREATE Vanish');
    await w.command('c', 'CREATE VanishDest');
    for (const subject of ['v1', 'v2', 'v3']) await append(w, 'Vanish', message(subject));
    expect(await w.command('s', 'SELECT Vanish')).toMatch(/\* 3 EXISTS/);
    // removed outside the store (by hand, or a Dovecot on the same tree): an expunge
    rmSync(fileOf('v2', 'Vanish'));
    const copy = await w.command('k', 'COPY 1:3 VanishDest');
    expect(copy).toMatch(/^k NO \[EXPUNGEISSUED\]/m);
    expect(await w.command('t', 'STATUS VanishDest (MESSAGES)')).toContain('(MESSAGES 0)');
    await w.command('x', 'LOGOUT');
  });

  it('FETCH of a message whose file is gone leaves it out: OK [EXPUNGEISSUED], never SERVERBUG', async () => {
    const w = await login();
    await w.command('c', 'CREATE Gone');
    for (const subject of ['g1', 'g2', 'g3']) await append(w, 'Gone', message(subject));
    await w.command('s', 'SELECT Gone');
    rmSync(fileOf('g2', 'Gone'));
    const fetch = await w.command('f', 'FETCH 1:3 (UID BODY.PEEK[])');
    expect(fetch).toMatch(/^f OK \[EXPUNGEISSUED\]/m);
    expect([...fetch.matchAll(/^\* (\d+) FETCH/gm)].map((m) => Number(m[1]))).toEqual([1, 3]);
    expect(fetch).toContain('Subject: g1');
    expect(fetch).toContain('Subject: g3');
    await w.command('x', 'LOGOUT');
  });

  it('COPY racing another session’s EXPUNGE never answers SERVERBUG', async () => {
    const a = await login();
    const b = await login();
    await a.command('c', 'CREATE CopyRace');
    await a.command('c', 'CREATE CopyRaceDest');
    const replies: string[] = [];
    for (let round = 0; round < 15; round++) {
      for (let i = 0; i < 20; i++) await append(a, 'CopyRace', message(`cr ${round} ${i}`));
      await a.command('s', 'SELECT CopyRace');
      await b.command('s', 'SELECT CopyRace');
      await b.command('d', 'STORE 1:* +FLAGS.SILENT (\\Deleted)');
      const [copy] = await Promise.all([
        a.command('k', 'COPY 1:* CopyRaceDest'),
        b.command('e', 'EXPUNGE'),
      ]);
      replies.push(copy.split('\r\n').find((l) => l.startsWith('k ')) ?? '');
      await a.command('n', 'NOOP');
    }
    // each COPY either won (OK, all copied) or lost (NO [EXPUNGEISSUED], nothing copied)
    for (const r of replies) expect(r).toMatch(/^k (OK|NO \[EXPUNGEISSUED\])/);
    const copied = replies.filter((r) => r.startsWith('k OK')).length;
    expect(await a.command('t', 'STATUS CopyRaceDest (MESSAGES)')).toContain(
      `(MESSAGES ${copied * 20})`,
    );
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });
});

describe('flag updates from other sessions', () => {
  it('a flag change held behind an EXPUNGE is reported with the current flags, not stale ones', async () => {
    const a = await login();
    const b = await login();
    await a.command('c', 'CREATE Order');
    for (const subject of ['o1', 'o2', 'o3']) await append(a, 'Order', message(subject));
    await a.command('s', 'SELECT Order');
    await b.command('s', 'SELECT Order');
    await b.command('d', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
    await b.command('e', 'EXPUNGE');
    await b.command('f', 'STORE 1 +FLAGS.SILENT (\\Answered)');
    // a STORE by sequence number may not release the EXPUNGE (§7.4.1), so b's \Answered waits behind it
    const store = await a.command('t', 'STORE 1 +FLAGS (\\Flagged)');
    expect(store).not.toMatch(/EXPUNGE/);
    expect(store).toMatch(/\* 1 FETCH \(FLAGS \(\\Answered \\Flagged( \\Recent)?\)\)/);
    const noop = await a.command('n', 'NOOP');
    expect(noop).toMatch(/\* 2 EXPUNGE/);
    // whatever FETCH FLAGS follows must not take \Flagged away again
    for (const m of noop.matchAll(/\* 1 FETCH \(FLAGS \(([^)]*)\)\)/g))
      expect(m[1]?.replace(' \\Recent', '')).toBe('\\Answered \\Flagged');
    expect(await b.command('f', 'FETCH 1 FLAGS')).toMatch(
      /\* 1 FETCH \(FLAGS \(\\Answered \\Flagged\)\)/,
    );
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });
});
