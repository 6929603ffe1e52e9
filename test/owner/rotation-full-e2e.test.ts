/**
 * A full rotation after a compromised device, end to end through the real processes:
 * `recrypt start`, the owner's `device revoke --compromised` (which starts the rotation),
 * each remaining device's `device rekey` with its own .p12, the owner's
 * `owner rotate --continue`. While the rotation waits the MX keeps the old group; after
 * the commit new mail is for the new group, read through the proxy by every remaining
 * device with `openssl cms`, old mail still reads, and everything the revoked device and
 * the gateway held before — its d, every rk it had, every group secret they give — is no
 * product that reaches the new group secret.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateGatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { readOwnerKeyFile } from '../../src/owner/index.js';
import { invertScalar, multiplyScalars, readPkcs12, type Scalar } from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  groupPem,
  ok,
  PASSPHRASE,
  startRotationWorld,
  type RotationWorld,
  type WorldDevice,
} from '../helpers/rotation-world.js';

const ADDRESS = 'fern@example.org';

describe('owner rotate (full) after device revoke --compromised', () => {
  let world: RotationWorld;
  let laptop: WorldDevice;
  let phone: WorldDevice;
  let tablet: WorldDevice;
  let leaked: Scalar[] = [];
  let oldGroup: { secret: Scalar; certificate: Uint8Array };

  beforeAll(async () => {
    for (const name of ['openssl', 'python3']) requireBinary(name);
    world = await startRotationWorld(ADDRESS);
    // Independent requests, each its own CLI process: side by side, except that the
    // laptop comes before the tablet (the owner's CLI names waiting devices in that order).
    let key;
    [laptop, key] = await Promise.all([
      world.addDevice('laptop'),
      readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE),
    ]);
    [phone, tablet] = await Promise.all([world.addDevice('phone'), world.addDevice('tablet')]);
    oldGroup = { secret: key.groupSecret, certificate: key.groupCertificate };
  }, 180_000);
  afterAll(async () => {
    await world?.close();
  });

  const rekey = (device: WorldDevice) =>
    world.owner(
      [
        'device',
        'rekey',
        '--p12',
        device.p12File,
        '--gateway',
        `https://127.0.0.1:${world.ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ],
      { RECRYPT_P12_PASSWORD: device.p12Password, RECRYPT_DEVICE_PASSWORD: device.devicePassword },
    );

  it('revoke --compromised starts a full rotation; the MX keeps the old group while it waits', async () => {
    const sentBefore = world.send('before', 'Written before the compromise.\r\n');
    // What a leak of the gateway's key store gives about the phone: every rk it held.
    const store = await openKeyStore(
      { kind: 'sqlite', path: join(world.root, 'data', 'keystore.sqlite') },
      { gatewayKey: loadOrCreateGatewayKey(join(world.root, 'data')) },
    );
    try {
      leaked = [...(await store.keysForDevice(ADDRESS, phone.id)).values()];
    } finally {
      await store.close();
    }
    expect(leaked).toHaveLength(1);
    await sentBefore;
    const started = ok(await world.owner(['device', 'revoke', 'phone', '--compromised']));
    expect(started).toMatch(/^device phone \(id [0-9a-f]{16}\) revoked$/m);
    expect(started).toMatch(/^full rotation of fern@example\.org started: new group [0-9a-f]+$/m);
    expect(started).toContain('on each of the 2 device(s): recrypt device rekey');
    await world.send('during', 'Written while the devices re-key.\r\n');
    const [, during] = await world.fetchAll(laptop);
    const old = groupPem(world.root, 'old-group', oldGroup.secret, oldGroup.certificate);
    const [byOld, byLaptop] = await Promise.all([
      world.decrypt({ pem: old }, during!),
      world.decrypt(laptop, during!),
    ]);
    expect(byOld).toContain('while the devices re-key');
    expect(byLaptop).toContain('while the devices re-key');
  }, 120_000);

  it('devices re-key with their own .p12 (the revoked one cannot ask), the owner answers, then commits', async () => {
    // The revoked phone cannot even ask (refused whatever the rotation's state: asked
    // while the owner looks at what it waits for).
    const [waiting, refused] = await Promise.all([
      world.owner(['owner', 'rotate', '--continue']),
      rekey(phone),
    ]);
    expect(ok(waiting)).toMatch(/^waiting for: laptop, tablet$/m);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/403/);
    expect(ok(await rekey(laptop))).toMatch(/^re-key request sent for laptop/m);
    const half = ok(await world.owner(['owner', 'rotate', '--continue']));
    expect(half).toMatch(/^answered laptop$/m);
    expect(half).toMatch(/^waiting for: tablet$/m);
    expect(ok(await rekey(tablet))).toMatch(/^re-key request sent for tablet/m);
    const done = ok(await world.owner(['owner', 'rotate', '--continue']));
    expect(done).toMatch(/^answered tablet$/m);
    expect(done).toMatch(/^rotated fern@example\.org \(full\): new group [0-9a-f]+$/m);
  }, 180_000);

  it('new mail is for the new group; every remaining device reads old and new; the leak reaches nothing new', async () => {
    await world.send('after', 'Written after the full rotation.\r\n');
    const key = await readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE);
    expect(key.formerGroups?.map((g) => g.groupSecret)).toEqual([oldGroup.secret]);
    const newPem = groupPem(world.root, 'new-group', key.groupSecret, key.groupCertificate);
    const oldPem = groupPem(world.root, 'old-group-2', oldGroup.secret, oldGroup.certificate);
    // Each device through its own IMAP session: both at once.
    await Promise.all(
      [laptop, tablet].map(async (device) => {
        const messages = await world.fetchAll(device);
        expect(messages).toHaveLength(3);
        const [texts, byNew, byOld, byPhone] = await Promise.all([
          Promise.all(messages.map((m) => world.decrypt(device, m))),
          world.decrypt({ pem: newPem }, messages[2]!),
          world.decrypt({ pem: oldPem }, messages[2]!),
          world.decrypt(phone, messages[2]!),
        ]);
        expect(texts[0]).toContain('before the compromise');
        expect(texts[1]).toContain('while the devices re-key');
        expect(texts[2]).toContain('after the full rotation');
        expect(byNew).toContain('after the full');
        expect(byOld).toBeNull();
        expect(byPhone).toBeNull();
      }),
    );
    // The phone's d, every rk the gateway held for it and every group secret they give
    // (g = rk·d): no product of one or two of them or their inverses is the new g′.
    const d = (await readPkcs12(new Uint8Array(readFileSync(phone.p12File)), phone.p12Password))
      .deviceSecret;
    const base = [d, ...leaked, ...leaked.map((rk) => multiplyScalars(rk, d))];
    const scalars = [...base, ...base.map(invertScalar)];
    expect(scalars).toContain(oldGroup.secret);
    for (const a of scalars) {
      expect(a).not.toBe(key.groupSecret);
      for (const b of scalars) expect(multiplyScalars(a, b)).not.toBe(key.groupSecret);
    }
  }, 120_000);
});
