/**
 * The embedded store makes mailboxes on demand for what the key store knows: accounts
 * (their INBOX, Sent, …) and lists (the list's archive). Real Maildir store, real SQLite
 * key store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { provisioningStore } from '../../src/gateway/provisioning-store.js';
import { GatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import type { MailStore } from '../../src/store/backend.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { fixture, randomRecipientIdHex } from '../keystore/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
let keyStore: KeyStore;
let store: MailStore;

beforeAll(async () => {
  keyStore = await openKeyStore(
    { kind: 'sqlite', path: join(dir.path, 'keystore.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  store = provisioningStore(await createMaildirStore({ root: join(dir.path, 'mail') }), keyStore);
  await keyStore.addUser({ address: 'owner@example.org' });
  await keyStore.createList({
    address: 'dev@lists.example.org',
    owner: 'owner@example.org',
    group: { groupId: randomRecipientIdHex(), certificate: fixture('group.der') },
  });
});

afterAll(async () => {
  await store.close();
  await keyStore.close();
  dir.remove();
});

const message = Buffer.from('Subject: hello\r\n\r\nbody\r\n');

describe('provisioningStore', () => {
  it("makes an account's mailboxes on its first delivery", async () => {
    expect(existsSync(join(dir.path, 'mail', 'owner@example.org'))).toBe(false);
    await store.deliver('owner@example.org', message);
    const names = (await (await store.openUser('owner@example.org')).listMailboxes()).map(
      (m) => m.name,
    );
    expect(names).toEqual(expect.arrayContaining(['INBOX', 'Sent', 'Drafts', 'Trash']));
  });

  it("makes a list's archive mailbox on its first post", async () => {
    expect(await store.userExists('dev@lists.example.org')).toBe(true);
    const stored = await store.deliver('dev@lists.example.org', message);
    expect(stored.uid).toBe(1);
  });

  it('knows nothing of an address the key store does not know', async () => {
    expect(await store.userExists('nobody@example.org')).toBe(false);
    expect(existsSync(join(dir.path, 'mail', 'nobody@example.org'))).toBe(false);
  });
});
