/** Contract sections: devices and recryption keys. */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DuplicateError,
  type KeyStore,
  KeyStoreArgumentError,
  KeyStoreError,
  type NewDevice,
  NotFoundError,
  TokenInvalidError,
} from '../../src/keystore/index.js';
import {
  ownerCertificates,
  randomRecipientIdHex,
  randomScalar,
  uniqueAddress,
} from './fixtures.js';
import { type ContractContext, expectError } from './contract-context.js';

export function devicesContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  let harness: ContractContext['harness'];
  let credentialHash: string;
  const groupId = ctx.groupId;
  const newDevice = (address: string, name: string, extra: Partial<NewDevice> = {}): NewDevice =>
    ctx.newDevice(address, name, extra);
  const enrolledUser = (): Promise<string> => ctx.enrolledUser();
  beforeAll(() => {
    ({ store, other, harness, credentialHash } = ctx);
  });

  describe('devices and recryption keys', () => {
    it('adds a device with its key and finds it by id, name and listing', async () => {
      const address = await enrolledUser();
      const rk = randomScalar();
      const input = newDevice(address, 'laptop', {
        keys: new Map([[groupId, rk]]),
        client: 'outlook',
      });
      const device = await store.addDevice(input);
      expect(device).toMatchObject({
        ownerAddress: address,
        name: 'laptop',
        deviceId: input.deviceId,
        client: 'outlook',
        credentialHash,
        lastSeen: null,
        revoked: null,
      });
      expect(device.id).toMatch(/^[0-9a-f]{16}$/);
      expect(await other.getDevice(address, device.id)).toEqual(device);
      expect(await other.getDeviceByName(address, 'laptop')).toEqual(device);
      expect(await other.listDevices(address)).toEqual([device]);
      expect(await other.listActiveDevices(address)).toEqual([device]);
      expect(await other.keysForDevice(address, device.id)).toEqual(new Map([[groupId, rk]]));
    });

    it('returns null or empty for unknown devices', async () => {
      const address = await enrolledUser();
      expect(await store.getDevice(address, '0123456789abcdef')).toBeNull();
      expect(await store.getDevice(address, 'not-an-id')).toBeNull();
      expect(await store.getDeviceByName(address, 'nothing')).toBeNull();
      expect(await store.listDevices(address)).toEqual([]);
      expect(await store.keysForDevice(address, '0123456789abcdef')).toEqual(new Map());
      await expectError(store.addDevice(newDevice(uniqueAddress('nobody'), 'x')), NotFoundError);
    });

    it('refuses a taken name and a reused certificate, writing nothing', async () => {
      const address = await enrolledUser();
      const first = newDevice(address, 'phone');
      const device = await store.addDevice(first);
      const nameClash = await expectError(
        other.addDevice(newDevice(address, 'phone')),
        DuplicateError,
      );
      expect(nameClash.what).toBe('device-name');
      // Same certificate under a new name with a different rk: refused, and the stored rk untouched.
      const idClash = await expectError(
        other.addDevice(
          newDevice(address, 'tablet', {
            deviceId: first.deviceId,
            keys: new Map([[groupId, randomScalar()]]),
          }),
        ),
        DuplicateError,
      );
      expect(idClash.what).toBe('device-id');
      expect(await store.listDevices(address)).toEqual([device]);
      expect(await store.getDeviceByName(address, 'tablet')).toBeNull();
      expect(await store.keysForDevice(address, device.id)).toEqual(first.keys);
    });

    it('is all-or-nothing when the key write fails inside the change', async () => {
      const address = await enrolledUser();
      const undo = await harness.injectKeyWriteFault(address);
      try {
        await expectError(store.addDevice(newDevice(address, 'doomed')), KeyStoreError);
      } finally {
        await undo();
      }
      expect(await store.getDeviceByName(address, 'doomed')).toBeNull();
      expect(await store.listDevices(address)).toEqual([]);
      // The fault is gone: the same device now goes in whole.
      const doomed = await store.addDevice(newDevice(address, 'doomed'));
      expect((await store.keysForDevice(address, doomed.id)).size).toBe(1);
    });

    it('validates devices at the boundary', async () => {
      const address = await enrolledUser();
      const bad: Array<Partial<NewDevice>> = [
        { name: '' },
        { name: 'x'.repeat(65) },
        { deviceId: 'XYZ' },
        { client: 'thunderbird' as never },
        { credentialHash: 'plaintext-password' },
        { certificate: new Uint8Array([1, 2, 3]) },
        { keys: new Map() },
        { keys: new Map([[groupId, 0n]]) },
        { keys: new Map([['nothex', randomScalar()]]) },
      ];
      for (const extra of bad) {
        await expectError(store.addDevice(newDevice(address, 'ok', extra)), KeyStoreArgumentError);
      }
      expect(await store.listDevices(address)).toEqual([]);
    });

    it('records the last login', async () => {
      const address = await enrolledUser();
      const device = await store.addDevice(newDevice(address, 'desk'));
      await store.touchDevice(address, device.id, 1_700_000_000_000);
      expect((await other.getDevice(address, device.id))?.lastSeen).toBe(1_700_000_000_000);
      await store.touchDevice(address, 'fedcba9876543210');
      expect(await store.getDevice(address, 'fedcba9876543210')).toBeNull();
    });

    it('adds keys for more groups and returns them all', async () => {
      const address = await enrolledUser();
      const device = await store.addDevice(newDevice(address, 'multi'));
      const secondGroup = randomRecipientIdHex();
      const rk2 = randomScalar();
      await other.putRecryptionKey(address, device.id, secondGroup, rk2);
      const keys = await store.keysForDevice(address, device.id);
      expect(keys.size).toBe(2);
      expect(keys.get(secondGroup)).toBe(rk2);
      await expectError(
        store.putRecryptionKey(address, 'fedcba9876543210', groupId, rk2),
        NotFoundError,
      );
    });

    it('revokes: marks the device, deletes its keys, frees its name, leaves the others', async () => {
      const address = await enrolledUser();
      const a = await store.addDevice(newDevice(address, 'a'));
      const b = await store.addDevice(newDevice(address, 'b'));
      const bKeys = await store.keysForDevice(address, b.id);
      const revoked = await other.revokeDevice(address, a.id);
      expect(revoked.revoked).toEqual(expect.any(Number));
      expect(await store.keysForDevice(address, a.id)).toEqual(new Map());
      expect((await store.getDevice(address, a.id))?.revoked).toBe(revoked.revoked);
      expect(await store.getDeviceByName(address, 'a')).toBeNull();
      expect((await store.listActiveDevices(address)).map((d) => d.id)).toEqual([b.id]);
      expect((await store.listDevices(address)).map((d) => d.id)).toEqual([a.id, b.id]);
      expect(await store.keysForDevice(address, b.id)).toEqual(bKeys);
      // Again: unchanged. The name can be used by a new device; the old certificate cannot.
      expect(await store.revokeDevice(address, a.id)).toEqual(revoked);
      await expectError(
        store.putRecryptionKey(address, a.id, groupId, randomScalar()),
        NotFoundError,
      );
      const again = await store.addDevice(newDevice(address, 'a'));
      expect((await store.getDeviceByName(address, 'a'))?.id).toBe(again.id);
      await expectError(
        store.addDevice(newDevice(address, 'c', { deviceId: a.deviceId })),
        DuplicateError,
      );
      await expectError(store.revokeDevice(address, '0000000000000000'), NotFoundError);
    });

    it('removing a user removes its devices, keys, token and profile', async () => {
      const address = await enrolledUser();
      const device = await store.addDevice(newDevice(address, 'gone'));
      await store.putProfile(address, '{"profile":1}');
      await store.removeUser(address);
      expect(await other.getUser(address)).toBeNull();
      expect(await other.keysForDevice(address, device.id)).toEqual(new Map());
      await store.addUser({ address });
      expect(await store.listDevices(address)).toEqual([]);
      expect(await store.getProfile(address)).toBeNull();
      await expectError(store.enrol(address, 'any', ownerCertificates()), TokenInvalidError);
    });
  });
}
