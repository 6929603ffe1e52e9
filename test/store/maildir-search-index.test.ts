/**
 * The search fields in the per-user index (src/store/README.md, "Index"; filled by
 * src/store/mime/search-fields.ts): written by APPEND and COPY/MOVE, removed by EXPUNGE,
 * ignored when stale and refilled when missing, and rebuilt with the rest of the index
 * when the file is damaged. Each case checks the SEARCH answers over IMAP and the rows.
 */
import Database from 'better-sqlite3';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore } from '../../src/store/backend.js';
import { startImapServer, type ImapServerHandle } from '../../src/store/imap/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { MASTER, plain, Wire } from '../helpers/store-imap.js';
import { tempDir } from '../helpers/tmp.js';

const USER = 'searcher';
const tmp = tempDir('recrypt-search-index-');
const indexFile = join(tmp.path, USER, 'recrypt-index.sqlite');
let store: MailStore;
let imap: ImapServerHandle;
const wires: Wire[] = [];

async function start(): Promise<void> {
  store = await createMaildirStore({ root: tmp.path });
  imap = await startImapServer({ store, master: MASTER });
}

async function stop(): Promise<void> {
  for (const w of wires.splice(0)) w.close();
  await imap.close();
  await store.close();
}

async function login(): Promise<Wire> {
  const w = await Wire.open(imap.port);
  wires.push(w);
  expect(await w.command('l', `AUTHENTICATE PLAIN ${plain(USER)}`)).toMatch(/^l OK/m);
  return w;
}

function message(from: string, subject: string, extra = ''): string {
  return `From: ${from}\r\nTo: team@example.com\r\nSubject: ${subject}\r\nDate: 5 Mar 2026 10:00:00 +0000\r\n${extra}\r\nbody of ${subject}\r\n`;
}

async function append(w: Wire, mailbox: string, text: string): Promise<void> {
  w.send(`a APPEND ${mailbox} {${Buffer.byteLength(text)}+}\r\n${text}\r\n`);
  expect(await w.until(/^a (OK|NO|BAD)[^\r\n]*\r\n/m)).toMatch(/^a OK/m);
}

/** The UIDs SEARCH answers (UID SEARCH). */
async function search(w: Wire, key: string): Promise<number[]> {
  const reply = await w.command('s', `UID SEARCH ${key}`);
  expect(reply).toMatch(/^s OK/m);
  const line = /^\* SEARCH([^\r\n]*)\r\n/m.exec(reply)?.[1] ?? '';
  return line
    .trim()
    .split(' ')
    .filter((x) => x !== '')
    .map(Number);
}

/** The search-field rows of the index: (uid, from) of every mailbox, read beside the store. */
function fieldRows(): Array<{ uid: number; from_lc: string }> {
  const db = new Database(indexFile, { readonly: true });
  try {
    return db
      .prepare<[], { uid: number; from_lc: string }>(
        'SELECT uid, from_lc FROM search_fields ORDER BY mailbox, uid',
      )
      .all();
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  await start();
  await store.createUser(USER);
  const w = await login();
  await append(w, 'INBOX', message('Ann Archer <ann@example.org>', 'first', 'X-Tag: red\r\n'));
  await append(w, 'INBOX', message('Bob Baker <bob@example.org>', 'second', 'X-Tag: blue\r\n'));
  // an encoded word: the raw header does not contain the decoded value
  await append(
    w,
    'INBOX',
    message('=?utf-8?q?Z=C3=B6e?= <zoe@example.org>', 'third', 'X-Tag: =?utf-8?q?gr=C3=BCn?=\r\n'),
  );
  await w.command('x', 'LOGOUT');
});

afterAll(async () => {
  await stop();
  tmp.remove();
});

describe('search fields in the index', () => {
  it('APPEND writes them: the answers come from the index, not the files', async () => {
    expect(fieldRows().map((r) => r.from_lc)).toEqual([
      'ann archer <ann@example.org>',
      'bob baker <bob@example.org>',
      'zöe <zoe@example.org>',
    ]);
    // overwritten behind the store's back (same size): SEARCH FROM still answers from the index
    let overwritten = 0;
    for (const sub of ['new', 'cur']) {
      const dir = join(tmp.path, USER, 'Maildir', sub);
      for (const name of readdirSync(dir)) {
        writeFileSync(join(dir, name), 'x'.repeat(Number(/,S=(\d+)/.exec(name)?.[1] ?? 0)));
        overwritten++;
      }
    }
    expect(overwritten).toBe(3);
    const w = await login();
    await w.command('e', 'EXAMINE INBOX');
    expect(await search(w, 'FROM bob')).toEqual([2]);
    expect(await search(w, 'SUBJECT THIRD')).toEqual([3]);
    expect(await search(w, 'OR FROM ann FROM bob')).toEqual([1, 2]);
    expect(await search(w, 'NOT FROM ann')).toEqual([2, 3]);
    expect(await search(w, 'SENTON 5-Mar-2026 FROM example.org')).toEqual([1, 2, 3]);
    // a header the prefilter rules out reads no file: nothing matches "red" in the X's
    expect(await search(w, 'HEADER X-Tag nothere')).toEqual([]);
    await w.command('x', 'LOGOUT');
  });
});

describe('maintenance', () => {
  let w: Wire;
  beforeAll(async () => {
    // fresh files again (the test above overwrote them)
    await stop();
    tmp.remove();
    await start();
    await store.createUser(USER);
    w = await login();
    await w.command('c', 'CREATE Other');
    await append(w, 'INBOX', message('Ann Archer <ann@example.org>', 'first', 'X-Tag: red\r\n'));
    await append(w, 'INBOX', message('Bob Baker <bob@example.org>', 'second', 'X-Tag: blue\r\n'));
    await append(
      w,
      'INBOX',
      message(
        '=?utf-8?q?Z=C3=B6e?= <zoe@example.org>',
        'third',
        'X-Tag: =?utf-8?q?gr=C3=BCn?=\r\n',
      ),
    );
    expect(await w.command('s', 'SELECT INBOX')).toMatch(/^s OK/m);
  });

  it('a message appended by another session is found by the next SEARCH', async () => {
    const other = await login();
    await append(other, 'INBOX', message('Carl <carl@example.org>', 'fourth', 'X-Tag: red\r\n'));
    await w.command('n', 'NOOP');
    expect(await search(w, 'FROM carl')).toEqual([4]);
    expect(await search(w, 'HEADER X-Tag red')).toEqual([1, 4]);
    // decoded value: the prefilter lets the encoded word through, the header decides
    const key = Buffer.from('grün');
    w.send(`g UID SEARCH CHARSET UTF-8 HEADER X-Tag {${key.length}+}\r\n`);
    w.send(Buffer.concat([key, Buffer.from('\r\n')]));
    expect(await w.until(/^g OK[^\r\n]*\r\n/m)).toContain('* SEARCH 3\r\n');
    other.close();
  });

  it('EXPUNGE removes the rows; the answers follow', async () => {
    await w.command('d', 'UID STORE 1 +FLAGS (\\Deleted)');
    expect(await w.command('x', 'EXPUNGE')).toMatch(/^x OK/m);
    expect(await search(w, 'FROM ann')).toEqual([]);
    expect(await search(w, 'HEADER X-Tag red')).toEqual([4]);
    expect(fieldRows().map((r) => r.uid)).toEqual([2, 3, 4]);
  });

  it('COPY and MOVE carry the rows to the destination', async () => {
    expect(await w.command('c', 'UID COPY 2 Other')).toMatch(/^c OK/m);
    expect(await w.command('m', 'UID MOVE 4 Other')).toMatch(/^m OK/m);
    expect(fieldRows().map((r) => r.from_lc)).toEqual(
      expect.arrayContaining(['bob baker <bob@example.org>', 'carl <carl@example.org>']),
    );
    expect(fieldRows()).toHaveLength(4); // INBOX 2, 3; Other 1, 2
    expect(await search(w, 'FROM carl')).toEqual([]);
    expect(await w.command('o', 'SELECT Other')).toMatch(/^o OK/m);
    expect(await search(w, 'FROM bob')).toEqual([1]);
    expect(await search(w, 'HEADER X-Tag red')).toEqual([2]);
    expect(await search(w, 'NOT HEADER X-Tag blue')).toEqual([2]);
  });

  it('stale, missing and damaged rows are not trusted: SEARCH answers from the files and refills them', async () => {
    await stop();
    const db = new Database(indexFile);
    // a row of another file (wrong base) that would wrongly match, and a row gone
    db.prepare(
      "UPDATE search_fields SET base = 'other', from_lc = 'ann' WHERE uid = 2 AND from_lc LIKE 'carl%'",
    ).run();
    db.prepare('DELETE FROM search_fields WHERE uid = 1').run();
    db.close();
    await start();
    const c = await login();
    await c.command('s', 'SELECT Other');
    expect(await search(c, 'FROM ann')).toEqual([]);
    expect(await search(c, 'FROM carl')).toEqual([2]);
    expect(await search(c, 'FROM bob')).toEqual([1]);
    // refilled: every message has its row again, with the right values
    expect(fieldRows().map((r) => r.from_lc)).not.toContain('ann');
    expect(fieldRows()).toHaveLength(4);
  });

  it('a damaged index file is rebuilt, search fields included', async () => {
    await stop();
    writeFileSync(indexFile, Buffer.alloc(8192, 0x5a));
    await start();
    const c = await login();
    await c.command('s', 'SELECT INBOX');
    expect(await search(c, 'FROM bob')).toEqual([2]);
    expect(await search(c, 'HEADER X-Tag blue')).toEqual([2]);
    expect(await search(c, 'SUBJECT third')).toEqual([3]);
    expect(fieldRows().length).toBeGreaterThanOrEqual(2);
  });
});
