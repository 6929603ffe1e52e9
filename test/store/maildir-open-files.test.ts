/**
 * The store-wide cache of open message files (src/store/maildir/open-files.ts): a
 * chunked read keeps the file open for the next chunk, and every rule that closes or
 * keeps a descriptor is checked against what the kernel reports in /proc/self/fd —
 * flag changes (which rename the file), expunge, closing the last handle, mailbox
 * delete and rename, the descriptor bound, and a descriptor never closed under a read.
 */
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { StoreError, type MailStore } from '../../src/store/backend.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { DEFAULT_OPEN_FILES, OpenFiles } from '../../src/store/maildir/open-files.js';
import { tempDir } from '../helpers/tmp.js';

const USER = 'alice@example.com';
const tmp = tempDir('recrypt-open-files-');
afterAll(() => tmp.remove());

let counter = 0;
let root = '';
let store: MailStore | null = null;

async function freshStore(): Promise<MailStore> {
  root = join(tmp.path, `store-${++counter}`);
  store = await createMaildirStore({ root });
  await store.createUser(USER);
  return store;
}

afterEach(async () => {
  await store?.close();
  store = null;
});

/** Message files (as the kernel names them now) this process holds open under `dir`. */
function openUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      // the index database (recrypt-index.sqlite) is open too; only messages count here
      if (target.startsWith(dir) && !target.includes('recrypt-index')) out.push(target);
    } catch {
      // the descriptor readdir itself used, gone by now
    }
  }
  return out;
}

/** A message of `size` bytes whose every byte depends on its offset and `seed`. */
function patterned(size: number, seed: number): Buffer {
  const header = Buffer.from(`Subject: m${seed}\r\n\r\n`);
  const out = Buffer.alloc(size);
  header.copy(out);
  for (let i = header.length; i < size; i++) out[i] = 0x41 + ((i * 7 + seed) % 26);
  return out;
}

const CHUNK = 64 * 1024;

describe('open message files', () => {
  it('keeps a file open between chunks, through a flag change that renames it', async () => {
    const s = await freshStore();
    const bytes = patterned(3 * CHUNK + 100, 1);
    const { uid } = await s.deliver(USER, bytes);
    const box = await (await s.openUser(USER)).openMailbox('INBOX', { readOnly: false });

    const first = await box.read(uid, { start: 0, length: CHUNK });
    expect(Buffer.from(first).equals(bytes.subarray(0, CHUNK))).toBe(true);
    const [before] = openUnder(root);
    expect(before).toMatch(/\/cur\/[^/]+$/);

    await box.setFlags([uid], 'add', ['\\Seen', '\\Flagged']);
    const [renamed] = openUnder(root);
    expect(renamed).not.toBe(before); // the kernel follows the rename…
    expect(renamed).toMatch(/:2,FS$/);

    const second = await box.read(uid, { start: CHUNK, length: CHUNK });
    expect(Buffer.from(second).equals(bytes.subarray(CHUNK, 2 * CHUNK))).toBe(true);
    expect(openUnder(root)).toEqual([renamed]); // …and the cached descriptor is reused

    const last = await box.read(uid, { start: 3 * CHUNK, length: CHUNK });
    expect(Buffer.from(last).equals(bytes.subarray(3 * CHUNK))).toBe(true);
    expect(openUnder(root)).toEqual([]); // the read reached the end: closed
  });

  it('does not keep a file open after a whole-message read', async () => {
    const s = await freshStore();
    const bytes = patterned(5000, 2);
    const { uid } = await s.deliver(USER, bytes);
    const box = await (await s.openUser(USER)).openMailbox('INBOX', { readOnly: false });
    expect(Buffer.from(await box.read(uid)).equals(bytes)).toBe(true);
    expect(openUnder(root)).toEqual([]);
  });

  it('closes the file of an expunged message and never serves it again', async () => {
    const s = await freshStore();
    const { uid } = await s.deliver(USER, patterned(2 * CHUNK, 3));
    const other = await s.deliver(USER, patterned(2 * CHUNK, 4));
    const box = await (await s.openUser(USER)).openMailbox('INBOX', { readOnly: false });
    await box.read(uid, { start: 0, length: 10 });
    await box.read(other.uid, { start: 0, length: 10 });
    expect(openUnder(root)).toHaveLength(2);

    await box.setFlags([uid], 'add', ['\\Deleted']);
    expect(await box.expunge()).toEqual([uid]);
    const left = openUnder(root);
    expect(left).toHaveLength(1); // no "(deleted)" file kept alive
    expect(left[0]).not.toContain('(deleted)');
    await expect(box.read(uid, { start: 10, length: 10 })).rejects.toMatchObject({
      code: 'no-such-message',
    });
    await expect(box.read(uid, { start: 10, length: 10 })).rejects.toBeInstanceOf(StoreError);
  });

  it('closes a mailbox’s files when its last handle closes, not before', async () => {
    const s = await freshStore();
    const { uid } = await s.deliver(USER, patterned(2 * CHUNK, 5));
    const user = await s.openUser(USER);
    const a = await user.openMailbox('INBOX', { readOnly: false });
    const b = await user.openMailbox('INBOX', { readOnly: true });
    await a.read(uid, { start: 0, length: 100 });
    await a.close();
    expect(openUnder(root)).toHaveLength(1);
    expect(Buffer.from(await b.read(uid, { start: 100, length: 5 })).toString()).toBe(
      patterned(2 * CHUNK, 5)
        .subarray(100, 105)
        .toString(),
    );
    await b.close();
    expect(openUnder(root)).toEqual([]);
  });

  it('closes the files of a deleted mailbox; a renamed one keeps reading the same messages', async () => {
    const s = await freshStore();
    const user = await s.openUser(USER);
    await user.createMailbox('Work');
    await user.createMailbox('Old');
    const work = patterned(2 * CHUNK, 6);
    const old = patterned(2 * CHUNK, 7);
    const w = await user.append('Work', work);
    const o = await user.append('Old', old);
    const workBox = await user.openMailbox('Work', { readOnly: false });
    const oldBox = await user.openMailbox('Old', { readOnly: false });
    await workBox.read(w.uid, { start: 0, length: 10 });
    await oldBox.read(o.uid, { start: 0, length: 10 });
    expect(openUnder(root)).toHaveLength(2);

    await user.deleteMailbox('Old');
    expect(openUnder(root)).toHaveLength(1);

    await user.renameMailbox('Work', 'Projects');
    const [moved] = openUnder(root);
    expect(moved).toContain('/.Projects/cur/');
    const next = await workBox.read(w.uid, { start: 10, length: 20 });
    expect(Buffer.from(next).equals(work.subarray(10, 30))).toBe(true);
  });

  it('never mixes up two mailboxes holding files of the same name', async () => {
    const s = await freshStore();
    const user = await s.openUser(USER);
    await user.createMailbox('Copy');
    const name = '1700000000.M1P1.host,S=131072';
    const inbox = patterned(2 * CHUNK, 8);
    const copy = patterned(2 * CHUNK, 9);
    writeFileSync(join(root, USER, 'Maildir', 'new', name), inbox);
    mkdirSync(join(root, USER, 'Maildir', '.Copy', 'new'), { recursive: true });
    writeFileSync(join(root, USER, 'Maildir', '.Copy', 'new', name), copy);
    const a = await user.openMailbox('INBOX', { readOnly: true });
    const b = await user.openMailbox('Copy', { readOnly: true });
    const [ua] = a.records().map((r) => r.uid) as [number];
    const [ub] = b.records().map((r) => r.uid) as [number];
    for (const start of [0, 100, 5000]) {
      const fromA = Buffer.from(await a.read(ua, { start, length: 50 }));
      const fromB = Buffer.from(await b.read(ub, { start, length: 50 }));
      expect(fromA.equals(inbox.subarray(start, start + 50))).toBe(true);
      expect(fromB.equals(copy.subarray(start, start + 50))).toBe(true);
    }
  });

  it(`keeps at most ${DEFAULT_OPEN_FILES} files open`, async () => {
    const s = await freshStore();
    const uids: number[] = [];
    for (let i = 0; i < DEFAULT_OPEN_FILES + 6; i++)
      uids.push((await s.deliver(USER, patterned(1000, 100 + i))).uid);
    const box = await (await s.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    for (const uid of uids) await box.read(uid, { start: 0, length: 10 });
    expect(openUnder(root)).toHaveLength(DEFAULT_OPEN_FILES);
    // the most recent ones are kept
    for (const [i, uid] of uids.entries()) {
      const again = Buffer.from(await box.read(uid, { start: 10, length: 10 }));
      expect(again.equals(patterned(1000, 100 + i).subarray(10, 20))).toBe(true);
    }
    await s.close();
    store = null;
    expect(openUnder(root)).toEqual([]);
  });
});

describe('OpenFiles', () => {
  it('closes a dropped descriptor only after the read using it has finished', async () => {
    const dir = join(tmp.path, 'raw');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'file');
    writeFileSync(path, 'abcdefghij');
    const files = new OpenFiles(2);
    const owner = files.newOwner();
    const lease = await files.lease(owner, 'k', path);
    files.forgetOwner(owner); // e.g. an expunge while a FETCH is reading
    expect(files.size).toBe(0);
    expect(openUnder(dir)).toHaveLength(1);
    const out = Buffer.alloc(4);
    expect(await lease.read(out, 0, 4, 3)).toBe(4);
    expect(out.toString()).toBe('defg');
    lease.release(true);
    expect(openUnder(dir)).toEqual([]);
  });

  it('shares one descriptor between concurrent readers of the same message', async () => {
    const dir = join(tmp.path, 'shared');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'file');
    writeFileSync(path, '0123456789');
    const files = new OpenFiles(4);
    const owner = files.newOwner();
    const [x, y] = await Promise.all([
      files.lease(owner, 'k', path),
      files.lease(owner, 'k', path),
    ]);
    expect(openUnder(dir)).toHaveLength(1);
    x.release(false); // dropped, but y still reads
    const out = Buffer.alloc(2);
    await y.read(out, 0, 2, 8);
    expect(out.toString()).toBe('89');
    y.release(true);
    expect(openUnder(dir)).toEqual([]);
  });

  it('forgets a failed open, so the next read tries again', async () => {
    const dir = join(tmp.path, 'missing');
    mkdirSync(dir, { recursive: true });
    const files = new OpenFiles(4);
    const owner = files.newOwner();
    await expect(files.lease(owner, 'k', join(dir, 'file'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(files.size).toBe(0);
    writeFileSync(join(dir, 'file'), 'x');
    const lease = await files.lease(owner, 'k', join(dir, 'file'));
    lease.release(false);
    expect(openUnder(dir)).toEqual([]);
  });
});
