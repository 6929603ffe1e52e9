/**
 * A full rotation's refused paths against the real admin API (in-process, TLS, SQLite),
 * with the owner and device libraries: a request whose MAC is not the device's (what a
 * gateway or anyone with the device's password could send) is not answered, a tampered β
 * stores nothing, the commit waits for every device, a start from a stale group and a
 * re-key by a stranger are refused.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addDevice,
  encodeOwnerKeyFile,
  readOwnerKeyFile,
  type AddedDevice,
  type OwnerKey,
} from '../../src/owner/index.js';
import { rekeyDevice } from '../../src/owner/rekey-device.js';
import { rotateMailbox } from '../../src/owner/rotation.js';
import { continueFullRotation } from '../../src/owner/rotation-full.js';
import {
  blindDeviceSecret,
  randomScalar,
  recipientIdOf,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import {
  api,
  snapshot,
  startApiGateway,
  type ApiGateway,
  type TestOwner,
} from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'flora@example.org';
const PASSPHRASE = 'pass phrase';
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

describe('full rotation through the admin API', () => {
  let gw: ApiGateway;
  let owner: TestOwner;
  let key: OwnerKey;
  let desk: AddedDevice;
  let phone: AddedDevice;
  const dir = tempDir('recrypt-rotation-full-');
  const keyFile = join(dir.path, 'owner.key');
  const gatewayOf = () => ({ gateway: key.gateway, ca: gw.cert });
  const rekey = (device: AddedDevice) =>
    rekeyDevice({
      p12: new Uint8Array(readFileSync(device.p12File)),
      p12Password: device.p12Password,
      devicePassword: device.devicePassword,
      ...gatewayOf(),
    });

  beforeAll(async () => {
    gw = await startApiGateway();
    ({ owner, key } = await enrolOwner(gw, ADDRESS));
    // The key file (scrypt) and two devices (each a request to the gateway): at once.
    let text: string;
    [text, desk, phone] = await Promise.all([
      encodeOwnerKeyFile(key, PASSPHRASE),
      addDevice(key, { name: 'desk', outDir: dir.path }),
      addDevice(key, { name: 'phone', outDir: dir.path }),
    ]);
    writeFileSync(keyFile, text, { mode: 0o600 });
  });
  afterAll(async () => {
    await gw?.close();
    dir.remove();
  });

  it('nothing is pending before a start; a stranger cannot re-key', async () => {
    await expect(rekey(desk)).rejects.toThrow(/no rotation is pending|404/);
    const stranger = await api(gw, 'POST', '/v1/device/rotation', {
      body: { address: ADDRESS, password: 'not a device password' },
    });
    expect(stranger.status).toBe(403);
  });

  it('a forged request is not answered, a tampered β stores nothing, the commit waits for every device', async () => {
    const started = await rotateMailbox(key, { keyFile, passphrase: PASSPHRASE, mode: 'full' });
    expect(started).toMatchObject({ mode: 'full', pending: true, devices: 2 });
    expect((await gw.keyStore.getUser(ADDRESS))!.owner!.groupId).toBe(started.formerGroupId);
    await rekey(desk);
    // Someone with the phone's password (but not its key) sends a request of their own.
    const blinded = blindDeviceSecret(randomScalar());
    const forged = await api(gw, 'POST', '/v1/device/rekey', {
      body: {
        address: ADDRESS,
        password: phone.devicePassword,
        groupId: started.groupId,
        sealedAlpha: 'A'.repeat(172),
        tau: b64(scalarToBytes(blinded.toGateway)),
        mac: 'forged',
      },
    });
    expect(forged.status).toBe(202);
    const before = await snapshot(gw.keyStore);
    // A β that does not come from g′: rk·D ≠ G′, refused, nothing stored.
    const tampered = await api(gw, 'POST', '/v1/owner/rotation/keys', {
      sign: owner.signer,
      body: {
        groupId: started.groupId,
        responses: [{ id: desk.device.id, beta: b64(scalarToBytes(randomScalar())) }],
      },
    });
    expect(tampered.status).toBe(400);
    expect(await snapshot(gw.keyStore)).toBe(before);
    // The owner answers the desk and refuses the forged phone request; no commit yet.
    const partial = await continueFullRotation(key, { keyFile, passphrase: PASSPHRASE });
    expect(partial).toMatchObject({
      answered: ['desk'],
      refused: ['phone'],
      missing: ['phone'],
      committed: false,
    });
    const early = await api(gw, 'POST', '/v1/owner/rotation/commit', {
      sign: owner.signer,
      body: { groupId: started.groupId },
    });
    expect(early.status).toBe(409);
    expect((await gw.keyStore.getUser(ADDRESS))!.owner!.groupId).toBe(started.formerGroupId);
    // The real phone asks; the owner answers and the rotation commits.
    await rekey(phone);
    const done = await continueFullRotation(key, { keyFile, passphrase: PASSPHRASE });
    expect(done).toMatchObject({ answered: ['phone'], refused: [], committed: true });
    const user = (await gw.keyStore.getUser(ADDRESS))!;
    expect(user.owner!.groupId).toBe(started.groupId);
    const rotated = await readOwnerKeyFile(keyFile, PASSPHRASE);
    expect(Buffer.from(recipientIdOf(rotated.groupCertificate)).toString('hex')).toBe(
      started.groupId,
    );
    expect(await gw.keyStore.pendingRotation(ADDRESS)).toBeNull();
  });

  it('a full start from a stale group is refused', async () => {
    const stale = await rotateMailbox(key, { keyFile, passphrase: PASSPHRASE, mode: 'full' }).then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    expect(stale).toMatch(/not this key file's/);
  });
});
