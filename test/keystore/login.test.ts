import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authenticateDevice,
  GatewayKey,
  hashDeviceCredential,
  type KeyStore,
  openKeyStore,
  toDeviceRecryptKeys,
} from '../../src/keystore/index.js';
import { tempDir } from '../helpers/tmp.js';
import {
  fixture,
  ownerCertificates,
  randomScalar,
  recipientIdHex,
  uniqueAddress,
} from './fixtures.js';

describe('device login', () => {
  const dir = tempDir('recrypt-login-');
  let store: KeyStore;
  let address: string;
  const groupId = ownerCertificates().groupId;

  beforeAll(async () => {
    store = await openKeyStore(
      { kind: 'sqlite', path: join(dir.path, 'ks.sqlite') },
      { gatewayKey: GatewayKey.generate() },
    );
    address = (await store.addUser({ address: uniqueAddress() })).address;
    const token = await store.createEnrolmentToken(address, 60_000);
    await store.enrol(address, token, ownerCertificates());
    for (const [name, file, client] of [
      ['laptop', 'device-a.der', 'standard'],
      ['outlook', 'device-b.der', 'outlook'],
    ] as const) {
      await store.addDevice({
        ownerAddress: address,
        name,
        certificate: fixture(file),
        deviceId: recipientIdHex(fixture(file)),
        client,
        credentialHash: await hashDeviceCredential(`password of ${name}`),
        keys: new Map([[groupId, randomScalar()]]),
      });
    }
  });

  afterAll(async () => {
    await store?.close();
    dir.remove();
  });

  it('finds the device a password belongs to', async () => {
    expect((await authenticateDevice(store, address, 'password of laptop'))?.name).toBe('laptop');
    expect(
      (
        await authenticateDevice(
          store,
          address.replace(/@.*$/, (domain) => domain.toUpperCase()),
          'password of outlook',
        )
      )?.name,
    ).toBe('outlook');
  });

  it('refuses wrong passwords, unknown and malformed accounts alike', async () => {
    expect(await authenticateDevice(store, address, 'password of nobody')).toBeNull();
    expect(
      await authenticateDevice(store, uniqueAddress('nobody'), 'password of laptop'),
    ).toBeNull();
    expect(await authenticateDevice(store, 'not an address', 'password of laptop')).toBeNull();
  });

  it('refuses a revoked device', async () => {
    const laptop = (await store.getDeviceByName(address, 'laptop'))!;
    await store.revokeDevice(address, laptop.id);
    expect(await authenticateDevice(store, address, 'password of laptop')).toBeNull();
    expect((await authenticateDevice(store, address, 'password of outlook'))?.name).toBe('outlook');
  });

  it("gives the transform the device's identifier, encoding and keys", async () => {
    const device = (await store.getDeviceByName(address, 'outlook'))!;
    const keys = await store.keysForDevice(address, device.id);
    const view = toDeviceRecryptKeys(device, keys);
    expect(Buffer.from(view.deviceId).toString('hex')).toBe(
      recipientIdHex(fixture('device-b.der')),
    );
    expect(view.wrapEncoding).toBe('null');
    expect([...view.keys.keys()]).toEqual([groupId]);
  });
});
