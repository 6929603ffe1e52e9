/**
 * `recrypt backup` of an embedded Maildir that changes under it (docs/operations.md,
 * "Backup and restore"): while the backup runs, flag changes rename message files and new
 * messages arrive. Every message the copied uidlist names must be in the backup with its
 * exact bytes (none is ever expunged here), and the restored store must open with the
 * same UIDs. The store and key store are the real ones, in this process, so that the
 * backup's file operations interleave with the store's renames.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupGateway } from '../../src/cli/operator/backup.js';
import { resolveOperatorContext } from '../../src/cli/operator/context.js';
import { restoreGateway } from '../../src/cli/operator/restore.js';
import { loadOrCreateGatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { parseUidList } from '../../src/store/maildir/uidlist.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-backup-live-');
const USER = 'alice@example.org';
const FIRST = 150;

function message(n: number): Buffer {
  return Buffer.from(`From: bob@example.com\r\nSubject: live ${n}\r\n\r\nbody ${n}\r\n`);
}

/** Lets I/O run between two store calls, so neither loop starves the backup. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

afterAll(() => tmp.remove());

describe('recrypt backup of a Maildir in use', () => {
  it('copies every message the uidlist names, renamed or new, with its bytes and UID', async () => {
    const configFile = join(tmp.path, 'recrypt.yaml');
    writeFileSync(configFile, 'dataDir: ./data\n');
    const context = resolveOperatorContext(configFile);
    process.umask(0o077);
    const dataDir = context.dataDir;
    mkdirSync(dataDir, { mode: 0o700 });
    const keyStore = await openKeyStore(context.config.keyStore, {
      gatewayKey: loadOrCreateGatewayKey(dataDir),
      dataDir,
    });
    const store = await createMaildirStore({ root: join(dataDir, 'mail') });
    await store.createUser(USER);
    const bodies = new Map<string, string>();
    for (let n = 0; n < FIRST; n++) bodies.set(sha(message(n)), `live ${n}`);
    for (let n = 0; n < FIRST; n++) await store.deliver(USER, message(n));
    const user = await store.openUser(USER);
    const inbox = await user.openMailbox('INBOX', { readOnly: false });
    const uids = inbox.records().map((r) => r.uid);

    let running = true;
    let renames = 0;
    const flagger = (async () => {
      for (let round = 0; running; round++) {
        const uid = uids[round % uids.length]!;
        await inbox.setFlags([uid], round % 2 === 0 ? 'add' : 'remove', ['\\Seen']);
        renames++;
        await turn();
      }
    })();
    let delivered = FIRST;
    const deliverer = (async () => {
      while (running) {
        bodies.set(sha(message(delivered)), `live ${delivered}`);
        await store.deliver(USER, message(delivered++));
        await turn();
      }
    })();
    const backupDir = join(tmp.path, 'backup');
    try {
      await backupGateway(context, backupDir);
    } finally {
      running = false;
      await Promise.all([flagger, deliverer]);
    }
    await inbox.close();
    await store.close();
    await keyStore.close();
    // The race this test is about happened: files were renamed and added during the copy.
    expect(renames).toBeGreaterThan(0);
    expect(delivered).toBeGreaterThan(FIRST);

    const maildir = join(backupDir, 'data', 'mail', USER, 'Maildir');
    const list = parseUidList(readFileSync(join(maildir, 'dovecot-uidlist'), 'utf8'))!;
    expect(list.entries.length).toBeGreaterThanOrEqual(FIRST);
    const copied = new Map<string, Buffer>();
    for (const sub of ['cur', 'new']) {
      for (const name of readdirSync(join(maildir, sub)))
        copied.set(name.split(':')[0]!, readFileSync(join(maildir, sub, name)));
    }
    const missing = list.entries.filter((e) => !copied.has(e.base)).map((e) => e.uid);
    expect(missing).toEqual([]);
    for (const bytes of copied.values()) expect(bodies.has(sha(bytes))).toBe(true);

    // Restored, the store numbers the same messages with the same UIDs.
    const target = join(tmp.path, 'restored');
    const restoredConfig = join(tmp.path, 'restored.yaml');
    writeFileSync(restoredConfig, `dataDir: ${target}\n`);
    await restoreGateway(resolveOperatorContext(restoredConfig), backupDir);
    const restoredStore = await createMaildirStore({ root: join(target, 'mail') });
    try {
      const restoredInbox = await (
        await restoredStore.openUser(USER)
      ).openMailbox('INBOX', { readOnly: true });
      const restoredUids = restoredInbox.records().map((r) => r.uid);
      expect(restoredUids.slice(0, list.entries.length)).toEqual(list.entries.map((e) => e.uid));
      for (const uid of restoredUids.slice(0, FIRST)) {
        const bytes = await restoredInbox.read(uid);
        expect(bodies.has(sha(bytes))).toBe(true);
      }
      await restoredInbox.close();
    } finally {
      await restoredStore.close();
    }
  }, 120_000);
});
