/** Contract section: a mailbox's group history and its rotation (group-rotation.ts). */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  KeyStoreArgumentError,
  KeyStoreError,
  NotFoundError,
  StaleStateError,
  type KeyStore,
  type KeyStoreEvent,
} from '../../src/keystore/index.js';
import { type ContractContext, expectError } from './contract-context.js';
import { fixture, randomRecipientIdHex, randomScalar, recipientIdHex } from './fixtures.js';

export function groupsContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  const oldGroupId = ctx.groupId;
  // Any DER certificate serves as the new group's here: the store does not parse it.
  const newCertificate = fixture('device-b.der');
  const newGroupId = recipientIdHex(newCertificate);
  beforeAll(() => {
    ({ store, other } = ctx);
  });

  /** An enrolled user with two active devices and one revoked; their ids. */
  const world = async () => {
    const address = await ctx.enrolledUser();
    const a = await store.addDevice(ctx.newDevice(address, 'a'));
    const b = await store.addDevice(ctx.newDevice(address, 'b'));
    const gone = await store.addDevice(ctx.newDevice(address, 'gone'));
    await store.revokeDevice(address, gone.id);
    await store.putProfile(address, 'old.profile.document');
    return { address, a, b, gone };
  };
  const rotation = (keys: Map<string, bigint>, fromGroupId = oldGroupId) => ({
    fromGroupId,
    group: { groupId: newGroupId, certificate: newCertificate },
    profile: 'new.profile.document',
    keys,
  });

  describe('mailbox group rotation', () => {
    it('switches group, profile and keys in one change; old keys stay; events per key', async () => {
      const { address, a, b } = await world();
      const oldA = (await store.keysForDevice(address, a.id)).get(oldGroupId)!;
      const rkA = randomScalar();
      const rkB = randomScalar();
      const events: KeyStoreEvent[] = [];
      // Only the new group's keys: the devices' own key-added events from world() can
      // still be on their way (Cluster pub/sub delivers late).
      const off = other.subscribe((e) => {
        if (e.type === 'key-added' && e.address === address && e.groupId === newGroupId)
          events.push(e);
      });
      const user = await store.rotateGroup(
        address,
        rotation(
          new Map([
            [a.id, rkA],
            [b.id, rkB],
          ]),
        ),
      );
      expect(user.owner!.groupId).toBe(newGroupId);
      expect(user.owner!.groupCertificate).toEqual(newCertificate);
      expect((await other.getUser(address))!.owner!.groupId).toBe(newGroupId);
      expect(await other.getProfile(address)).toBe('new.profile.document');
      expect(await other.keysForDevice(address, a.id)).toEqual(
        new Map([
          [oldGroupId, oldA],
          [newGroupId, rkA],
        ]),
      );
      expect((await other.keysForDevice(address, b.id)).get(newGroupId)).toBe(rkB);
      expect(await other.formerGroups(address)).toEqual([
        { groupId: oldGroupId, certificate: fixture('group.der') },
      ]);
      await expect.poll(() => events.length).toBe(2);
      expect(events.map((e) => (e as { id: string }).id).sort()).toEqual([a.id, b.id].sort());
      off();
    });

    it('accepts a device that already holds a key for the new group (it re-ran the blinded issue)', async () => {
      const { address, a, b } = await world();
      const rkB = randomScalar();
      await store.putRecryptionKey(address, b.id, newGroupId, rkB);
      const user = await store.rotateGroup(address, rotation(new Map([[a.id, randomScalar()]])));
      expect(user.owner!.groupId).toBe(newGroupId);
      expect((await store.keysForDevice(address, b.id)).get(newGroupId)).toBe(rkB);
    });

    it('refuses, storing nothing: stale group, a device left without a key, a revoked device, a group it had', async () => {
      const { address, a, b, gone } = await world();
      const before = async () => ({
        user: await store.getUser(address),
        profile: await store.getProfile(address),
        former: await store.formerGroups(address),
        a: await store.keysForDevice(address, a.id),
        b: await store.keysForDevice(address, b.id),
      });
      const snapshot = await before();
      const both = new Map([
        [a.id, randomScalar()],
        [b.id, randomScalar()],
      ]);
      await expectError(
        store.rotateGroup(address, rotation(both, randomRecipientIdHex())),
        StaleStateError,
      );
      await expectError(
        store.rotateGroup(address, rotation(new Map([[a.id, randomScalar()]]))),
        StaleStateError,
      );
      await expectError(
        store.rotateGroup(address, rotation(new Map([...both, [gone.id, randomScalar()]]))),
        StaleStateError,
      );
      await expectError(
        store.rotateGroup(address, {
          ...rotation(both),
          group: { groupId: oldGroupId, certificate: fixture('group.der') },
        }),
        KeyStoreArgumentError,
      );
      await expectError(
        store.rotateGroup(address, rotation(new Map([['not-an-id', randomScalar()]]))),
        KeyStoreArgumentError,
      );
      await expectError(
        store.rotateGroup('nobody-here@example.org', rotation(both)),
        NotFoundError,
      );
      expect(await before()).toEqual(snapshot);
      // A second rotation from the group it replaced is stale once the first went in.
      await store.rotateGroup(address, rotation(both));
      await expectError(store.rotateGroup(address, rotation(both)), StaleStateError);
    });

    it('is all-or-nothing when the key write fails inside the change', async () => {
      const { address, a, b } = await world();
      const undo = await ctx.harness.injectKeyWriteFault(address);
      try {
        await expectError(
          store.rotateGroup(
            address,
            rotation(
              new Map([
                [a.id, randomScalar()],
                [b.id, randomScalar()],
              ]),
            ),
          ),
          KeyStoreError,
        );
      } finally {
        await undo();
      }
      expect((await store.getUser(address))!.owner!.groupId).toBe(oldGroupId);
      expect(await store.getProfile(address)).toBe('old.profile.document');
      expect(await store.formerGroups(address)).toEqual([]);
    });

    it('forgets the history with the enrolment reset', async () => {
      const { address, a, b } = await world();
      await store.rotateGroup(
        address,
        rotation(
          new Map([
            [a.id, randomScalar()],
            [b.id, randomScalar()],
          ]),
        ),
      );
      expect(await store.formerGroups(address)).toHaveLength(1);
      await store.resetEnrolment(address);
      expect(await store.formerGroups(address)).toEqual([]);
    });

    it('keeps a full rotation pending until every device holds a key; then it commits and is gone', async () => {
      const { address, a, b, gone } = await world();
      const pendingInput = {
        fromGroupId: oldGroupId,
        group: { groupId: newGroupId, certificate: newCertificate },
        profile: 'new.profile.document',
      };
      await expectError(
        store.startRotation(
          address,
          { ...pendingInput, fromGroupId: randomRecipientIdHex() },
          60_000,
        ),
        StaleStateError,
      );
      const request = (id: string, groupId = newGroupId) => ({
        id,
        groupId,
        sealedAlpha: 'sealed-alpha',
        mac: 'mac',
        tau: randomScalar(),
      });
      await expectError(store.putRekeyRequest(address, request(a.id)), StaleStateError);
      await store.startRotation(address, pendingInput, 60_000);
      const pending = (await other.pendingRotation(address))!;
      expect(pending).toMatchObject({ fromGroupId: oldGroupId, profile: 'new.profile.document' });
      expect(pending.group).toEqual({ groupId: newGroupId, certificate: newCertificate });
      // The MX still encrypts to the current group.
      expect((await other.getUser(address))!.owner!.groupId).toBe(oldGroupId);
      const ra = request(a.id);
      await store.putRekeyRequest(address, ra);
      await expectError(
        store.putRekeyRequest(address, request(b.id, randomRecipientIdHex())),
        StaleStateError,
      );
      await expectError(store.putRekeyRequest(address, request(gone.id)), NotFoundError);
      const listed = await other.rekeyRequests(address);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({
        id: a.id,
        sealedAlpha: 'sealed-alpha',
        mac: 'mac',
        tau: ra.tau,
      });
      await store.removeRekeyRequest(address, a.id);
      expect(await other.rekeyRequests(address)).toEqual([]);
      // Commit refused while a device has no key for the new group.
      await store.putRecryptionKey(address, a.id, newGroupId, randomScalar());
      await expectError(
        store.rotateGroup(address, { ...pendingInput, keys: new Map() }),
        StaleStateError,
      );
      await store.putRecryptionKey(address, b.id, newGroupId, randomScalar());
      await store.putRekeyRequest(address, request(b.id));
      const user = await store.rotateGroup(address, { ...pendingInput, keys: new Map() });
      expect(user.owner!.groupId).toBe(newGroupId);
      expect(await other.pendingRotation(address)).toBeNull();
      expect(await other.rekeyRequests(address)).toEqual([]);
    });

    it('forgets a cancelled or expired pending rotation', async () => {
      const { address } = await world();
      const pendingInput = {
        fromGroupId: oldGroupId,
        group: { groupId: newGroupId, certificate: newCertificate },
        profile: 'p',
      };
      await store.startRotation(address, pendingInput, 60_000);
      await store.cancelRotation(address);
      expect(await other.pendingRotation(address)).toBeNull();
      await store.startRotation(address, pendingInput, 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await other.pendingRotation(address)).toBeNull();
    });
  });
}
