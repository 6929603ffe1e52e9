/**
 * Read side: a post encrypted once to the list group, delivered to two members'
 * mailboxes and the list's archive mailbox in the embedded store, fetched through the
 * real proxy by each member's devices. The proxy composes rk_{list→member} with the
 * device's own key; stock `openssl cms -decrypt` reads it with that device's key only.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceKeysWithLists } from '../../src/imap/adapters/keystore-directory.js';
import {
  GatewayKey,
  openKeyStore,
  type KeyStore,
  type KeyStoreConfig,
  type MailingList,
} from '../../src/keystore/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  type ListGroupKey,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { fetchBody, startListReadPath, type ListReadPath } from '../helpers/lists-proxy.js';
import { decryptWith, encryptToGroup, type PemIdentity } from '../helpers/proxy-pki.js';
import { tempDir } from '../helpers/tmp.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const POST = readFileSync(fileURLToPath(new URL('../fixtures/lists/post.eml', import.meta.url)));
const LIST = 'dev@lists.test';

async function fails(message: Buffer, who: PemIdentity): Promise<boolean> {
  return decryptWith(message, who).then(
    () => false,
    () => true,
  );
}

describe.each(['sqlite', 'redis'] as const)(
  'list posts read through the proxy by composition (%s)',
  (kind) => {
    const dir = tempDir('lists-proxy-');
    let redis: RedisServer | undefined;
    /** The proxy's store, and another instance on the same data: the admin side's process. */
    let keyStore: KeyStore;
    let admin: KeyStore;
    let path: ListReadPath;
    let owner: ListMemberUser;
    let alice: ListMemberUser;
    let bob: ListMemberUser;
    let carol: ListMemberUser;
    let list: MailingList;
    let group: ListGroupKey;
    let stored: Buffer;

    beforeAll(async () => {
      const gatewayKey = GatewayKey.generate();
      if (kind === 'redis') redis = await startRedis();
      const config: KeyStoreConfig =
        redis === undefined
          ? { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') }
          : { kind: 'redis', url: redis.url };
      keyStore = await openKeyStore(config, { gatewayKey });
      admin = await openKeyStore(config, { gatewayKey });
      // Independent users (certificates, password hashes, key-store rows): made at once.
      [owner, alice, bob, carol] = await Promise.all([
        addMember(keyStore, dir.path, 'owner@lists.test', 1),
        addMember(keyStore, dir.path, 'alice@lists.test', 2),
        addMember(keyStore, dir.path, 'bob@lists.test', 1),
        addMember(keyStore, dir.path, 'carol@lists.test', 1),
      ]);
      group = await newListGroup(dir.path, owner, LIST, 'g1');
      list = await keyStore.createList({
        address: LIST,
        owner: owner.address,
        group: { groupId: group.groupId, certificate: group.certDer },
      });
      await blindedJoin(keyStore, list, group, alice);
      await blindedJoin(keyStore, list, group, bob);
      path = await startListReadPath(
        keyStore,
        [LIST, alice.address, bob.address, carol.address],
        dir.path,
      );
      stored = await encryptToGroup(POST, group, 'list post');
      // One ciphertext for every mailbox; carol is no member but gets a copy to show
      // that a copy alone does not make it readable.
      await path.deliver(stored, [alice.address, bob.address, LIST, carol.address]);
    });

    afterAll(async () => {
      await path?.stop();
      await keyStore?.close();
      await admin?.close();
      await redis?.dispose();
      dir.remove();
    });

    it('the stored post reads with the list key only, not with a member group key', async () => {
      expect((await decryptWith(stored, group)).equals(POST)).toBe(true);
      expect(await fails(stored, alice.group)).toBe(true);
      expect(await fails(stored, alice.devices[0]!)).toBe(true);
    });

    it('every device of every member decrypts its fetched copy with its own key only', async () => {
      const devices = [alice, bob].flatMap((m) => m.devices.map((d) => ({ m, d })));
      for (const { m, d } of devices) {
        const body = await path.fetch(m.address, d.password, 1);
        expect(body.length).toBe(stored.length);
        expect((await decryptWith(body, d)).equals(POST)).toBe(true);
        for (const { d: other } of devices)
          if (other !== d) expect(await fails(body, other)).toBe(true);
        expect(await fails(body, group)).toBe(true);
        expect(await fails(body, m.group)).toBe(true);
      }
    });

    it('a non-member device gets the post unchanged and cannot read it', async () => {
      const body = await path.fetch(carol.address, carol.devices[0]!.password, 1);
      expect(body.equals(stored)).toBe(true);
      expect(await fails(body, carol.devices[0]!)).toBe(true);
    });

    it('removal ends the member sessions and later fetches stay unreadable; a revoked device has no list key', async () => {
      const w = await path.session(bob.address, bob.devices[0]!.password);
      expect((await decryptWith(await fetchBody(w, 1), bob.devices[0]!)).equals(POST)).toBe(true);
      // Removed through the other instance: the proxy hears it as a notification.
      await admin.removeListMember(LIST, bob.address);
      // Its open session may hold recrypt plans made with the removed key: it is ended.
      await w.waitFor(/\* BYE .*\r\n/, 5_000);
      const after = await path.fetch(bob.address, bob.devices[0]!.password, 1);
      expect(after.equals(stored)).toBe(true);
      expect(await fails(after, bob.devices[0]!)).toBe(true);

      const second = alice.devices[1]!;
      expect(
        (await deviceKeysWithLists(keyStore, alice.address, second.id)).has(group.groupId),
      ).toBe(true);
      await admin.revokeDevice(alice.address, second.id);
      expect((await deviceKeysWithLists(keyStore, alice.address, second.id)).size).toBe(0);
      const first = await path.fetch(alice.address, alice.devices[0]!.password, 1);
      expect((await decryptWith(first, alice.devices[0]!)).equals(POST)).toBe(true);
    });
  },
);
