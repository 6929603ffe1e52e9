/**
 * A list post's recrypted points are computed at delivery for the members' devices, as
 * for the MX's own copies (src/lists/post-delivery.ts `onCopyStored`,
 * src/imap/adapters/points-at-delivery.ts), in the MX's worker threads (EncryptPool): a
 * post through the real MX to the embedded store, then, for every device of every
 * member, the BODY[] plan kept at delivery is found with the keys a proxy session has
 * (the device's own plus the composed list key), applies to the stored copy, and makes a
 * copy that stock `openssl cms -decrypt` reads with that device's key only; planning
 * from the kept points multiplies nothing. A non-member's device finds nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceKeysWithLists } from '../../src/imap/adapters/keystore-directory.js';
import {
  pointsAtDelivery,
  type PointsAtDelivery,
} from '../../src/imap/adapters/points-at-delivery.js';
import { keysFingerprint } from '../../src/imap/plan-codec.js';
import { PointCache } from '../../src/imap/point-cache.js';
import {
  GatewayKey,
  openKeyStore,
  toDeviceRecryptKeys,
  type KeyStore,
} from '../../src/keystore/index.js';
import { applyEdits, planRecrypt } from '../../src/recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../src/recrypt/types.js';
import { EncryptPool } from '../../src/smtp/adapters/encrypt-pool.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { post, startListMx, type ListMx } from '../helpers/lists-mx.js';
import { startListReadPath, storedInbox, type ListReadPath } from '../helpers/lists-proxy.js';
import { decryptWith } from '../helpers/proxy-pki.js';
import { tempDir } from '../helpers/tmp.js';

const DOMAIN = 'lists.test';
const LIST = `dev@${DOMAIN}`;
const TEMPLATE = readFileSync(
  fileURLToPath(new URL('../fixtures/lists/post-untagged.eml', import.meta.url)),
  'latin1',
);

describe('list posts: points computed at delivery for the members', () => {
  const dir = tempDir('lists-points-');
  let keyStore: KeyStore;
  let path: ListReadPath;
  let mx: ListMx;
  let cache: PointCache;
  let pool: EncryptPool;
  let atDelivery: PointsAtDelivery;
  let alice: ListMemberUser;
  let bob: ListMemberUser;
  let carol: ListMemberUser;
  let stored: Buffer;

  /** The keys a proxy session of this device has. */
  async function sessionKeys(member: ListMemberUser, index: number): Promise<DeviceRecryptKeys> {
    const id = member.devices[index]!.id;
    const device = (await keyStore.listDevices(member.address)).find((d) => d.id === id)!;
    return toDeviceRecryptKeys(device, await deviceKeysWithLists(keyStore, member.address, id));
  }

  beforeAll(async () => {
    keyStore = await openKeyStore(
      { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') },
      { gatewayKey: GatewayKey.generate() },
    );
    const owner = await addMember(keyStore, dir.path, `owner@${DOMAIN}`, 1);
    alice = await addMember(keyStore, dir.path, `alice@${DOMAIN}`, 2);
    bob = await addMember(keyStore, dir.path, `bob@${DOMAIN}`, 1);
    carol = await addMember(keyStore, dir.path, `carol@${DOMAIN}`, 1);
    const group = await newListGroup(dir.path, owner, LIST, 'g1');
    const list = await keyStore.createList({
      address: LIST,
      owner: owner.address,
      group: { groupId: group.groupId, certificate: group.certDer },
    });
    await blindedJoin(keyStore, list, group, alice);
    await blindedJoin(keyStore, list, group, bob);
    path = await startListReadPath(
      keyStore,
      [LIST, owner.address, alice.address, bob.address, carol.address],
      dir.path,
    );
    cache = new PointCache(join(dir.path, 'point-cache.sqlite'));
    pool = new EncryptPool({ size: 1 });
    atDelivery = pointsAtDelivery({
      keyStore,
      points: cache.delivered,
      compute: (prefix, keys) => pool.computePoints(prefix, keys),
    });
    mx = await startListMx(keyStore, path.lmtpPort, DOMAIN, {
      dir: dir.path,
      onCopyStored: (copy) => atDelivery.onCopyStored(copy),
    });
    const text = TEMPLATE.replace('%ID%', 'points').replace('%MARKER%', 'points-at-delivery');
    const sent = await post(mx.port, alice.address, LIST, Buffer.from(text, 'latin1'));
    expect(sent.data).toMatch(/^250/);
    await atDelivery.idle();
    stored = (await storedInbox(path.store, alice.address))[0]!;
  }, 120_000);

  afterAll(async () => {
    await mx?.close();
    await path?.stop();
    await pool?.close();
    cache?.close();
    await keyStore?.close();
    dir.remove();
  });

  it("every member device's plan and points were kept, and read with its key only", async () => {
    const devices = [
      { member: alice, index: 0 },
      { member: alice, index: 1 },
      { member: bob, index: 0 },
    ];
    // One point and one plan per member device (the poster's own devices included).
    expect(cache.delivered.stats.stored).toBe(devices.length);
    expect(cache.delivered.plans.stats.stored).toBe(devices.length);
    for (const { member, index } of devices) {
      const keys = await sessionKeys(member, index);
      const edits = cache.delivered.plans.lookup(keysFingerprint(keys), stored);
      expect(edits).toBeDefined();
      const copy = Buffer.from(applyEdits(Buffer.from(stored), 0, edits!));
      expect((await decryptWith(copy, member.devices[index]!)).toString('latin1')).toContain(
        'points-at-delivery',
      );
      for (const other of devices)
        if (other.member !== member || other.index !== index)
          await expect(decryptWith(copy, other.member.devices[other.index]!)).rejects.toThrow();
      // Planning from the kept points multiplies nothing.
      const misses = cache.delivered.stats.misses;
      const plan = planRecrypt(stored, 'message', keys, cache.delivered.source());
      expect(plan.kind).toBe('edits');
      expect(cache.delivered.stats.misses).toBe(misses);
    }
  });

  it("a non-member's device finds no plan and nothing to recrypt", async () => {
    const keys = await sessionKeys(carol, 0);
    expect(cache.delivered.plans.lookup(keysFingerprint(keys), stored)).toBeUndefined();
    expect(planRecrypt(stored, 'message', keys, cache.delivered.source()).kind).toBe('unchanged');
  });
});
