import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  StoreError,
  type MailboxEvent,
  type MailStore,
  type MessageRecord,
} from '../../src/store/backend.js';
import {
  createMaildirStore,
  decodeModifiedUtf7,
  encodeModifiedUtf7,
  normalizeMailboxName,
} from '../../src/store/maildir/index.js';
import { diskNameOf, nameFromDisk } from '../../src/store/maildir/names.js';
import { parseUidList } from '../../src/store/maildir/uidlist.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/store');
const USER = 'alice@example.com';
const tmp = tempDir('recrypt-maildir-');
afterAll(() => tmp.remove());

let counter = 0;
let root = '';
let store: MailStore;
const open: MailStore[] = [];

async function freshStore(): Promise<MailStore> {
  root = join(tmp.path, `store-${++counter}`);
  store = await createMaildirStore({ root });
  open.push(store);
  await store.createUser(USER);
  return store;
}

async function reopen(): Promise<MailStore> {
  await store.close();
  store = await createMaildirStore({ root });
  open.push(store);
  return store;
}

afterAll(async () => {
  for (const s of open) await s.close();
});

function message(subject: string, body = 'hello'): Buffer {
  return Buffer.from(
    `From: Bob <bob@example.net>\r\nTo: ${USER}\r\nSubject: ${subject}\r\n\r\n${body}\r\n`,
  );
}

const maildir = (): string => join(root, USER, 'Maildir');

async function rejectsWith(promise: Promise<unknown>, code: StoreError['code']): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(StoreError);
  await expect(promise).rejects.toMatchObject({ code });
}

describe('names', () => {
  const table = JSON.parse(readFileSync(join(FIXTURES, 'mailbox-names.json'), 'utf8')) as {
    valid: Array<[string, string]>;
    invalid: string[];
  };
  const utf7 = JSON.parse(readFileSync(join(FIXTURES, 'mutf7.json'), 'utf8')) as {
    pairs: Array<[string, string]>;
    invalid: string[];
  };

  it.each(table.valid)('accepts %j as %j', (name, normal) => {
    expect(normalizeMailboxName(name)).toBe(normal);
  });

  it.each(table.invalid.map((n) => [n]))('refuses %j', (name) => {
    expect(() => normalizeMailboxName(name)).toThrow(StoreError);
  });

  it('refuses over-long names and levels', () => {
    expect(() => normalizeMailboxName('x'.repeat(201))).toThrow(StoreError);
    expect(() => normalizeMailboxName(Array(17).fill('a').join('/'))).toThrow(StoreError);
  });

  it('any accepted name maps to one safe directory entry and back (property)', () => {
    const level = fc.string({
      unit: fc.constantFrom(
        'a',
        'Z',
        '.',
        '/',
        '&',
        '-',
        ' ',
        '~',
        'ü',
        '台',
        '😀',
        '\u0000',
        '*',
        '\\',
      ),
      maxLength: 12,
    });
    fc.assert(
      fc.property(fc.array(level, { minLength: 1, maxLength: 4 }), (levels) => {
        let name: string;
        try {
          name = normalizeMailboxName(levels.join('/'));
        } catch (err) {
          expect(err).toBeInstanceOf(StoreError);
          return;
        }
        if (name === 'INBOX') return;
        const disk = diskNameOf(name);
        expect(disk.startsWith('.')).toBe(true);
        expect(
          disk.includes('/') ||
            disk.includes('\u0000') ||
            disk.includes('..') ||
            disk.endsWith('.'),
        ).toBe(false);
        expect(nameFromDisk(disk)).toBe(name);
      }),
      { numRuns: 3000 },
    );
  });

  it.each(utf7.pairs)('modified UTF-7: %j <-> %j', (decoded, encoded) => {
    expect(encodeModifiedUtf7(decoded)).toBe(encoded);
    expect(decodeModifiedUtf7(encoded)).toBe(decoded);
  });

  it.each(utf7.invalid.map((s) => [s]))('modified UTF-7 refuses %j', (encoded) => {
    expect(decodeModifiedUtf7(encoded)).toBeNull();
  });

  it('refuses traversal through the store API and creates nothing outside the user', async () => {
    await freshStore();
    const user = await store.openUser(USER);
    for (const name of table.invalid) {
      await rejectsWith(user.createMailbox(name), 'invalid-name');
      await expect(user.openMailbox(name, { readOnly: true })).rejects.toBeInstanceOf(StoreError);
    }
    expect(readdirSync(root)).toEqual([USER]);
    expect(readdirSync(join(root, USER)).sort()).toEqual([
      'Maildir',
      'recrypt-index.sqlite',
      'recrypt-index.sqlite-shm',
      'recrypt-index.sqlite-wal',
    ]);
    await rejectsWith(store.deliver('../etc', message('x')), 'no-such-user');
    expect(await store.userExists('../../etc')).toBe(false);
  });

  it('stores non-ASCII names in modified UTF-7 on disk, as Dovecot does', async () => {
    await freshStore();
    const user = await store.openUser(USER);
    await user.createMailbox('Entwürfe/台北');
    expect(existsSync(join(maildir(), '.Entw&APw-rfe.&U,BTFw-', 'cur'))).toBe(true);
    const names = (await user.listMailboxes()).map((m) => [m.name, m.noSelect]);
    expect(names).toContainEqual(['Entwürfe/台北', false]);
    expect(names).toContainEqual(['Entwürfe', true]);
  });
});

describe('dovecot-uidlist parsing', () => {
  const { cases } = JSON.parse(readFileSync(join(FIXTURES, 'uidlist-cases.json'), 'utf8')) as {
    cases: Array<{
      name: string;
      text: string;
      expected: null | ({ entries: Array<[number, string]> } & Record<string, unknown>);
    }>;
  };
  it.each(cases)('$name', ({ text, expected }) => {
    const got = parseUidList(text);
    if (expected === null) {
      expect(got).toBeNull();
      return;
    }
    const { entries, ...header } = expected;
    expect(got).toMatchObject(header);
    expect(got?.entries.map((e) => [e.uid, e.base])).toEqual(entries);
  });
});

describe('maildir store', () => {
  beforeEach(async () => {
    await freshStore();
  });

  it('creates users with the special-use mailboxes, subscribed', async () => {
    const list = await (await store.openUser(USER)).listMailboxes();
    expect(list.map((m) => [m.name, m.specialUse ?? null, m.subscribed, m.noSelect])).toEqual([
      ['Archive', '\\Archive', true, false],
      ['Drafts', '\\Drafts', true, false],
      ['INBOX', null, true, false],
      ['Junk', '\\Junk', true, false],
      ['Sent', '\\Sent', true, false],
      ['Trash', '\\Trash', true, false],
    ]);
    for (const dir of ['cur', 'new', 'tmp', '.Sent/cur', '.Trash/new'])
      expect(existsSync(join(maildir(), dir))).toBe(true);
    await rejectsWith(store.openUser('nobody@example.com'), 'no-such-user');
  });

  it('delivers durably into new/ with Dovecot file names and uidlist, and reads ranges', async () => {
    const bytes = message('first', 'x'.repeat(1000));
    const result = await store.deliver(USER, bytes);
    expect(result.uid).toBe(1);
    const files = readdirSync(join(maildir(), 'new'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^\\d+\\.M\\d+P\\d+Q\\d+\\..+,S=${bytes.length}$`));
    expect(readFileSync(join(maildir(), 'new', files[0] as string))).toEqual(bytes);
    const uidlist = readFileSync(join(maildir(), 'dovecot-uidlist'), 'utf8').split('\n');
    expect(uidlist[0]).toMatch(new RegExp(`^3 V${result.uidValidity} N\\d+ G[0-9a-f]{32}$`));
    expect(uidlist[1]).toBe(`1 :${files[0]}`);

    const box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: false });
    expect(box.records()).toMatchObject([{ uid: 1, size: bytes.length, flags: [] }]);
    expect(Buffer.from(await box.read(1))).toEqual(bytes);
    expect(Buffer.from(await box.read(1, { start: 10, length: 20 }))).toEqual(
      bytes.subarray(10, 30),
    );
    expect(Buffer.from(await box.read(1, { start: bytes.length - 5, length: 100 }))).toEqual(
      bytes.subarray(-5),
    );
    expect((await box.structure(1)).envelope.subject).toBe('first');
    await rejectsWith(box.read(99), 'no-such-message');
    await box.close();
  });

  it('keeps flags in file names and keywords in dovecot-keywords', async () => {
    const user = await store.openUser(USER);
    await user.append('INBOX', message('a'), {
      flags: ['\\seen', 'Work'],
      internalDate: new Date('2030-01-02T03:04:05Z'),
    });
    const box = await user.openMailbox('INBOX', { readOnly: false });
    expect(box.records()[0]).toMatchObject({
      flags: ['\\Seen', 'Work'],
      internalDate: new Date('2030-01-02T03:04:05Z'),
    });
    await box.setFlags([1], 'add', ['\\Flagged', '$Later']);
    await box.setFlags([1], 'remove', ['work']);
    expect(box.records()[0]?.flags).toEqual(['\\Seen', '\\Flagged', '$Later']);
    expect(readdirSync(join(maildir(), 'cur'))[0]).toMatch(/:2,FSb$/);
    expect(readFileSync(join(maildir(), 'dovecot-keywords'), 'utf8')).toBe('0 Work\n1 $Later\n');
    await box.setFlags([1], 'set', ['\\Answered']);
    expect(readdirSync(join(maildir(), 'cur'))[0]).toMatch(/:2,R$/);
    await expect(box.setFlags([1], 'add', ['\\Bogus'])).rejects.toBeInstanceOf(StoreError);
    const many = Array.from({ length: 30 }, (_, i) => `k${i}`);
    await rejectsWith(box.setFlags([1], 'add', many), 'limit');
    await box.close();
  });

  it('keeps UIDs, UIDVALIDITY, flags, mailboxes and subscriptions across a restart', async () => {
    let user = await store.openUser(USER);
    await user.createMailbox('Projects/Old');
    await user.setSubscribed('Projects/Old', true);
    await user.setSubscribed('Junk', false);
    const uids = [];
    for (let i = 0; i < 5; i++) uids.push((await store.deliver(USER, message(`m${i}`))).uid);
    let box = await user.openMailbox('INBOX', { readOnly: false });
    await box.setFlags([2, 4], 'add', ['\\Deleted']);
    expect(await box.expunge()).toEqual([2, 4]);
    await box.setFlags([5], 'add', ['\\Seen', 'Keep']);
    const before = {
      status: await user.status('INBOX'),
      records: box.records(),
      list: await user.listMailboxes(),
    };
    await box.close();

    await reopen();
    user = await store.openUser(USER);
    box = await user.openMailbox('INBOX', { readOnly: false });
    // mod-sequences restart above every one handed out before (RFC 7162 §3.1.1; modseq.ts)
    const status = await user.status('INBOX');
    expect(status.highestModseq).toBeGreaterThan(before.status.highestModseq);
    expect(status).toEqual({ ...before.status, recent: 0, highestModseq: status.highestModseq });
    expect(withoutModseq(box.records())).toEqual(withoutModseq(before.records));
    for (const r of box.records()) expect(r.modseq).toBe(status.highestModseq);
    expect(box.records().map((r) => r.uid)).toEqual([1, 3, 5]);
    expect(await user.listMailboxes()).toEqual(before.list);
    expect((await user.listMailboxes()).find((m) => m.name === 'Junk')?.subscribed).toBe(false);
    // UIDs are never reused, even after the highest ones were expunged
    await box.setFlags([5], 'add', ['\\Deleted']);
    await box.expunge();
    await box.close();
    await reopen();
    expect((await store.deliver(USER, message('after'))).uid).toBe(6);
  });

  it('reconciles files added or removed behind its back on open', async () => {
    await store.deliver(USER, message('one'));
    await store.deliver(USER, message('two'));
    await reopen();
    // UID 1's file, by the uidlist: names from one second do not sort by arrival
    // (the microseconds after M are not zero-padded).
    const first = /^1 :(\S+)$/m.exec(readFileSync(join(maildir(), 'dovecot-uidlist'), 'utf8'))![1]!;
    const name = readdirSync(join(maildir(), 'new')).find((n) => n.startsWith(first)) as string;
    const { rmSync } = await import('node:fs');
    rmSync(join(maildir(), 'new', name));
    writeFileSync(join(maildir(), 'cur', '1000000000.external.host,S=5:2,S'), 'X: y\r\n');
    const box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    expect(box.records().map((r) => [r.uid, r.flags])).toEqual([
      [2, []],
      [3, ['\\Seen']],
    ]);
    const uidlist = readFileSync(join(maildir(), 'dovecot-uidlist'), 'utf8');
    expect(uidlist).toContain('3 :1000000000.external.host,S=5\n');
    expect(uidlist).not.toContain(name);
    await box.close();
  });

  it('tells other handles about deliveries, flag changes and expunges', async () => {
    const user = await store.openUser(USER);
    const a = await user.openMailbox('INBOX', { readOnly: false });
    const b = await user.openMailbox('INBOX', { readOnly: false });
    const seenA: MailboxEvent[] = [];
    const seenB: MailboxEvent[] = [];
    a.onEvent((e) => seenA.push(e));
    b.onEvent((e) => seenB.push(e));
    await store.deliver(USER, message('1'));
    await user.append('INBOX', message('2'));
    expect(seenB).toEqual([
      { type: 'exists', uids: [1] },
      { type: 'exists', uids: [2] },
    ]);
    await a.setFlags([1, 2], 'add', ['\\Deleted']);
    expect(await a.expunge([1])).toEqual([1]);
    expect(seenB.slice(2)).toEqual([
      { type: 'flags', uid: 1, flags: ['\\Deleted'] },
      { type: 'flags', uid: 2, flags: ['\\Deleted'] },
      { type: 'expunge', uids: [1] },
    ]);
    // the session that made a change is not told about it again
    expect(seenA).toEqual(seenB.slice(0, 2));
    expect(b.records().map((r) => r.uid)).toEqual([2]);
    await a.close();
    await b.close();
  });

  it('gives \\Recent to the first read-write handle only', async () => {
    const user = await store.openUser(USER);
    await store.deliver(USER, message('1'));
    const ro = await user.openMailbox('INBOX', { readOnly: true });
    expect(ro.recentCount()).toBe(1);
    const first = await user.openMailbox('INBOX', { readOnly: false });
    const second = await user.openMailbox('INBOX', { readOnly: false });
    expect([
      first.recentCount(),
      first.isRecent(1),
      second.recentCount(),
      second.isRecent(1),
    ]).toEqual([1, true, 0, false]);
    expect(readdirSync(join(maildir(), 'new'))).toEqual([]);
    await store.deliver(USER, message('2'));
    expect([first.isRecent(2), second.isRecent(2)]).toEqual([true, false]);
    for (const h of [ro, first, second]) await h.close();
  });

  it('copies and moves with UIDPLUS pairs and keeps flags', async () => {
    const user = await store.openUser(USER);
    for (let i = 0; i < 3; i++)
      await user.append('INBOX', message(`m${i}`), { flags: i === 1 ? ['\\Seen', 'Tag'] : [] });
    const box = await user.openMailbox('INBOX', { readOnly: false });
    const archive = await user.openMailbox('Archive', { readOnly: false });
    const events: MailboxEvent[] = [];
    archive.onEvent((e) => events.push(e));
    const copied = await box.copy([1, 2], 'Archive');
    expect(copied.pairs).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(copied.uidValidity).toBe(archive.uidValidity);
    expect(archive.records().map((r) => r.flags)).toEqual([[], ['\\Seen', 'Tag']]);
    expect(Buffer.from(await archive.read(2)).toString()).toContain('Subject: m1');
    const moved = await box.move([3], 'Trash');
    expect(moved.pairs).toEqual([[3, 1]]);
    expect(box.records().map((r) => r.uid)).toEqual([1, 2]);
    expect(events).toEqual([{ type: 'exists', uids: [1, 2] }]);
    await rejectsWith(box.copy([1], 'Nope'), 'no-such-mailbox');
    await box.close();
    await archive.close();
  });

  it('creates, renames (with children) and deletes mailboxes', async () => {
    const user = await store.openUser(USER);
    await user.createMailbox('Work');
    await user.createMailbox('Work/2030');
    await user.setSubscribed('Work/2030', true);
    await user.append('Work/2030', message('kept'));
    await rejectsWith(user.createMailbox('work/../Work'), 'invalid-name');
    await rejectsWith(user.createMailbox('Work'), 'mailbox-exists');
    const before = await user.status('Work/2030');
    await user.renameMailbox('Work', 'Jobs');
    const names = (await user.listMailboxes()).map((m) => m.name);
    expect(names).toContain('Jobs/2030');
    expect(names).not.toContain('Work');
    expect(await user.status('Jobs/2030')).toEqual(before);
    expect((await user.listMailboxes()).find((m) => m.name === 'Jobs/2030')?.subscribed).toBe(true);
    await rejectsWith(user.renameMailbox('Jobs', 'Jobs/inner'), 'invalid-name');
    await user.deleteMailbox('Jobs/2030');
    await rejectsWith(user.status('Jobs/2030'), 'no-such-mailbox');
    await rejectsWith(user.deleteMailbox('INBOX'), 'invalid-name');
    expect(readdirSync(join(root, USER)).filter((n) => n.startsWith('deleted-'))).toEqual([]);
  });

  it('gives a re-created mailbox a new UIDVALIDITY, even within the same second', async () => {
    const user = await store.openUser(USER);
    const seen = new Set<number>();
    for (let i = 0; i < 3; i++) {
      await user.createMailbox('Again');
      seen.add((await user.status('Again')).uidValidity);
      await user.deleteMailbox('Again');
    }
    expect(seen.size).toBe(3);
  });

  it('numbers concurrent deliveries, appends and flag changes consistently', async () => {
    const user = await store.openUser(USER);
    const box = await user.openMailbox('INBOX', { readOnly: false });
    const jobs: Array<Promise<unknown>> = [];
    for (let i = 0; i < 30; i++) {
      jobs.push(
        i % 2 === 0
          ? store.deliver(USER, message(`d${i}`))
          : user.append('INBOX', message(`a${i}`), { flags: ['\\Seen'] }),
      );
      if (i % 5 === 4) jobs.push(box.setFlags([i - 2], 'add', ['\\Flagged']));
    }
    const results = await Promise.all(jobs);
    const uids = results
      .filter((r): r is { uid: number } => typeof r === 'object' && r !== null && 'uid' in r)
      .map((r) => r.uid);
    expect(uids.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const records = box.records();
    await box.close();
    await reopen();
    const again = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    expect(withoutModseq(again.records())).toEqual(withoutModseq(records));
    const highest = Math.max(...records.map((r) => r.modseq));
    for (const r of again.records()) expect(r.modseq).toBeGreaterThan(highest);
    const subjects = new Set<string>();
    for (const r of again.records())
      subjects.add((await again.structure(r.uid)).envelope.subject ?? '');
    expect(subjects.size).toBe(30);
    await again.close();
  });

  it('renaming INBOX moves its messages and leaves it empty', async () => {
    const user = await store.openUser(USER);
    await store.deliver(USER, message('1'));
    await user.renameMailbox('INBOX', 'Old');
    expect((await user.status('INBOX')).messages).toBe(0);
    expect((await user.status('Old')).messages).toBe(1);
  });
});

describe('faults the real disk cannot show on demand (injected)', () => {
  // FAKE: fault injection through MaildirStoreOptions.fault stands in for a full or
  // failing disk; everything else (files, renames, fsync) is real.
  async function faultyStore(
    code: string,
    op: 'write-message' | 'write-meta',
  ): Promise<{ arm: () => void }> {
    root = join(tmp.path, `store-${++counter}`);
    let armed = false;
    store = await createMaildirStore({
      root,
      fault: (which) => {
        if (armed && which === op) throw Object.assign(new Error(code), { code });
      },
    });
    open.push(store);
    await store.createUser(USER);
    return { arm: () => (armed = true) };
  }

  function visible(): string[] {
    return ['tmp', 'new', 'cur'].flatMap((d) => readdirSync(join(maildir(), d)));
  }

  it.each([
    ['ENOSPC', 'over-quota'],
    ['EDQUOT', 'over-quota'],
    ['EIO', 'io-error'],
  ] as const)('%s while writing a message → %s, nothing left behind', async (code, reason) => {
    const { arm } = await faultyStore(code, 'write-message');
    await store.deliver(USER, message('before'));
    const uidlist = readFileSync(join(maildir(), 'dovecot-uidlist'), 'utf8');
    const files = visible();
    arm();
    await rejectsWith(store.deliver(USER, message('lost')), reason);
    expect(visible()).toEqual(files);
    expect(readFileSync(join(maildir(), 'dovecot-uidlist'), 'utf8')).toBe(uidlist);
  });

  it('a failed uidlist append is repaired by the next write', async () => {
    const { arm } = await faultyStore('ENOSPC', 'write-meta');
    await store.deliver(USER, message('one'));
    arm();
    await rejectsWith(store.deliver(USER, message('two')), 'over-quota');
    await store.close();
    store = await createMaildirStore({ root });
    open.push(store);
    const box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    // the message file was complete and renamed before the append failed: it is kept, once
    expect(box.records().map((r) => r.uid)).toEqual([1, 2]);
    expect(Buffer.from(await box.read(2)).toString()).toContain('Subject: two');
    await box.close();
  });
});

function withoutModseq(records: MessageRecord[]): Array<Omit<MessageRecord, 'modseq'>> {
  return records.map(({ modseq: _modseq, ...rest }) => rest);
}
