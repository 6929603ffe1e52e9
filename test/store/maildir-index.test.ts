import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MailStore, MessageStructure } from '../../src/store/backend.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { parseMessageStructure } from '../../src/store/mime/index.js';
import { tempDirInMemory } from '../helpers/tmp.js';

/**
 * The index must answer listings and ENVELOPE/BODYSTRUCTURE for 10,000 messages without
 * reading message files. Proof without timing: after indexing, every file's content is
 * overwritten with zeros of the same length; a store reopened from disk must still list
 * the original records and structures, which it could only get from the index.
 */

const COUNT = 10_000;
const USER = 'bulk@example.com';
// 20,000 file writes, 10,000 reads and the removal: on a busy disk they were most of the
// test's time. What is checked is the index, not durability.
const tmp = tempDirInMemory('recrypt-index-');
const stores: MailStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  tmp.remove();
});

function sample(i: number): Buffer {
  const multipart = i % 3 === 0;
  const head = `From: Sender ${i} <s${i}@example.net>\r\nTo: ${USER}\r\nSubject: message ${i}\r\nMessage-ID: <m${i}@example.net>\r\n`;
  if (!multipart) return Buffer.from(`${head}\r\nbody ${i}\r\n`);
  return Buffer.from(
    `${head}Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n--b${i}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b${i}--\r\n`,
  );
}

describe('index', () => {
  it(`lists ${COUNT} messages with envelopes and structures after their files were overwritten`, async () => {
    const root = join(tmp.path, 'root');
    let store = await createMaildirStore({ root });
    stores.push(store);
    await store.createUser(USER);
    // Files written straight into cur/ the way another MDA (or a Dovecot migration)
    // would leave them: the first open must find, number and index every one.
    const cur = join(root, USER, 'Maildir', 'cur');
    for (let i = 0; i < COUNT; i++) {
      const bytes = sample(i);
      const seen = i % 2 === 0 ? 'S' : '';
      writeFileSync(
        join(cur, `1700000000.M${String(i).padStart(6, '0')}P1.bulk,S=${bytes.length}:2,${seen}`),
        bytes,
      );
    }

    let started = performance.now();
    let box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    const indexing = performance.now() - started;
    const records = box.records();
    expect(records).toHaveLength(COUNT);
    expect(records[COUNT - 1]?.uid).toBe(COUNT);
    const structures = new Map<number, MessageStructure>();
    for (const r of records) structures.set(r.uid, await box.structure(r.uid));
    // UIDs follow file-name order, so uid i+1 is sample(i)
    expect(structures.get(1)).toEqual(parseMessageStructure(sample(0)));
    expect(structures.get(COUNT)?.envelope.subject).toBe(`message ${COUNT - 1}`);
    await box.close();
    await store.close();

    const names = readdirSync(cur);
    expect(names).toHaveLength(COUNT);
    for (const name of names) {
      const size = statSync(join(cur, name)).size;
      writeFileSync(join(cur, name), Buffer.alloc(size));
    }

    started = performance.now();
    store = await createMaildirStore({ root });
    stores.push(store);
    box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    const fromIndex = box.records().map((r) => r.uid);
    for (const uid of fromIndex) await box.structure(uid);
    const listing = performance.now() - started;
    // figures only, never asserted (no timing assertions)
    console.log(
      `index: first open parsed ${COUNT} files in ${indexing.toFixed(0)} ms; reopen + list + ${COUNT} structures from the index in ${listing.toFixed(0)} ms`,
    );
    // the same records; mod-sequences start above the old ones after a restart (modseq.ts)
    const highest = Math.max(...records.map((r) => r.modseq));
    expect(box.records().map(({ modseq: _m, ...r }) => r)).toEqual(
      records.map(({ modseq: _m, ...r }) => r),
    );
    expect(box.records().every((r) => r.modseq > highest)).toBe(true);
    let multiparts = 0;
    for (const r of box.records()) {
      const s = await box.structure(r.uid);
      expect(s).toEqual(structures.get(r.uid));
      if (s.root.parts.length === 2) multiparts++;
    }
    expect(multiparts).toBe(Math.ceil(COUNT / 3));
    expect(box.records().filter((r) => r.flags.includes('\\Seen'))).toHaveLength(COUNT / 2);
    // and the files really are zeros now: a listing that parsed them would show nothing
    const first = Buffer.from(await box.read(1));
    expect(first.every((b) => b === 0)).toBe(true);
    expect(parseMessageStructure(first).envelope.subject).toBeNull();
    expect(readFileSync(join(cur, names[0] as string)).every((b) => b === 0)).toBe(true);
    await box.close();
  });
});
