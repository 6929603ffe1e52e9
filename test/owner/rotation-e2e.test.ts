/**
 * `recrypt owner rotate --fast` end to end through the real processes: `recrypt start`
 * (embedded store, SQLite key store), the owner's CLI, mail over SMTP and fetched through
 * the proxy with Python's imaplib as each device, read with `openssl cms -decrypt` and the
 * device's own key. Mail from before the rotation stays readable (the proxy picks the key
 * for the group a stored message names), mail after it is encrypted to the new group only,
 * and the profile and SMIMEA record switch with the MX.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOwnerKeyFile, type OwnerKey } from '../../src/owner/index.js';
import { wrapMessage } from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  groupPem,
  ok,
  PASSPHRASE,
  startRotationWorld,
  type RotationWorld,
  type WorldDevice,
} from '../helpers/rotation-world.js';

const ADDRESS = 'rita@example.org';

describe('owner rotate --fast through a running gateway', () => {
  let world: RotationWorld;
  let laptop: WorldDevice;
  let phone: WorldDevice;
  let keyBefore: OwnerKey;

  beforeAll(async () => {
    for (const name of ['openssl', 'python3']) requireBinary(name);
    world = await startRotationWorld(ADDRESS);
    laptop = await world.addDevice('laptop');
    phone = await world.addDevice('phone');
    keyBefore = await readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE);
  }, 180_000);
  afterAll(async () => {
    await world?.close();
  });

  const smimea = async () =>
    ok(
      await world.owner([
        'smimea',
        ADDRESS,
        '--gateway',
        `https://127.0.0.1:${world.ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ]),
    );

  it('a wrong passphrase is refused and nothing changes', async () => {
    const keyFile = join(world.ownerDir, 'owner.key');
    const bytes = readFileSync(keyFile);
    const record = await smimea();
    const refused = await world.owner(['owner', 'rotate', '--fast'], {
      RECRYPT_PASSPHRASE: 'not the passphrase',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/wrong passphrase/);
    expect(readFileSync(keyFile)).toEqual(bytes);
    expect(existsSync(`${keyFile}.next`)).toBe(false);
    expect(await smimea()).toBe(record);
  }, 120_000);

  it('re-keys every device: old mail still reads, new mail is for the new group only', async () => {
    await world.send('before', 'Written before the rotation.\r\n');
    const recordBefore = await smimea();
    const out = ok(await world.owner(['owner', 'rotate', '--fast']));
    expect(out).toMatch(/^rotated rita@example\.org \(fast\): 2 device\(s\) re-keyed$/m);
    const key = await readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE);
    expect(key.groupSecret).not.toBe(keyBefore.groupSecret);
    expect(key.formerGroups).toEqual([
      { groupSecret: keyBefore.groupSecret, groupCertificate: keyBefore.groupCertificate },
    ]);
    expect(existsSync(join(world.ownerDir, 'owner.key.next'))).toBe(false);
    // The published profile and the SMIMEA record name the new group certificate.
    const recordAfter = await smimea();
    expect(recordAfter).not.toBe(recordBefore);
    const profile = JSON.parse(
      ok(
        await world.owner([
          'profile',
          'show',
          '--gateway',
          `https://127.0.0.1:${world.ports.admin}`,
          '--ca',
          'gateway-cert.pem',
        ]),
      ),
    ) as Record<string, unknown>;
    expect(JSON.stringify(profile)).toContain(Buffer.from(key.groupCertificate).toString('base64'));

    await world.send('after', 'Written after the rotation.\r\n');
    const oldGroup = groupPem(
      world.root,
      'old-group',
      keyBefore.groupSecret,
      keyBefore.groupCertificate,
    );
    const newGroup = groupPem(world.root, 'new-group', key.groupSecret, key.groupCertificate);
    for (const device of [laptop, phone]) {
      const [before, after] = await world.fetchAll(device);
      expect(await world.decrypt(device, before!)).toContain('Written before the rotation.');
      expect(await world.decrypt(device, after!)).toContain('Written after the rotation.');
      // What the MX stored: the old message for the old group, the new one for the new.
      expect(await world.decrypt({ pem: oldGroup }, before!)).toContain('before the rotation');
      expect(await world.decrypt({ pem: newGroup }, after!)).toContain('after the rotation');
      expect(await world.decrypt({ pem: oldGroup }, after!)).toBeNull();
    }
  }, 180_000);

  it('mail its sender encrypted to the old group (an older profile) is stored as it is and reads', async () => {
    const original = Buffer.from(
      `From: eve@sender.example\r\nTo: ${ADDRESS}\r\nSubject: stale profile\r\n\r\nEncrypted to the old group by its sender.\r\n`,
    );
    const raw = Buffer.from(wrapMessage(original, keyBefore.groupCertificate));
    await world.sendRaw(raw);
    for (const device of [laptop, phone]) {
      const messages = await world.fetchAll(device);
      expect(messages).toHaveLength(3);
      expect(await world.decrypt(device, messages[2]!)).toContain(
        'Encrypted to the old group by its sender.',
      );
    }
  }, 120_000);

  it('a device added after the rotation reads the mail from before it too', async () => {
    const tablet = await world.addDevice('tablet');
    const messages = await world.fetchAll(tablet);
    expect(messages).toHaveLength(3);
    expect(await world.decrypt(tablet, messages[0]!)).toContain('Written before the rotation.');
    expect(await world.decrypt(tablet, messages[1]!)).toContain('Written after the rotation.');
    expect(await world.decrypt(tablet, messages[2]!)).toContain('old group by its sender');
  }, 120_000);

  it('under load: mail arriving and devices fetching during a rotation, nothing lost, all readable', async () => {
    const devices = [laptop, phone];
    const already = (await world.fetchAll(laptop)).length;
    // Mail keeps arriving from before the rotation starts until after it ended (at most 200).
    let sent = 0;
    let sending = true;
    let rotated = false;
    let sentAfter = 0;
    const sender = (async () => {
      try {
        while (sent < 200 && (!rotated || sentAfter < 4)) {
          await world.send(`load ${sent}`, `Load message ${sent}.\r\n`);
          sent++;
          if (rotated) sentAfter++;
        }
      } finally {
        sending = false;
      }
    })();
    const unreadable: string[] = [];
    const fetcher = (async () => {
      while (sending) {
        for (const device of devices)
          for (const message of await world.fetchAll(device))
            if ((await world.decrypt(device, message)) === null) unreadable.push(device.name);
      }
    })();
    while (sent < 4) await new Promise((resolve) => setTimeout(resolve, 50));
    const rotation = ok(await world.owner(['owner', 'rotate', '--fast']));
    expect(rotation).toMatch(/\(fast\): 3 device\(s\) re-keyed/);
    rotated = true;
    await sender;
    await fetcher;
    expect(sentAfter).toBe(4);
    const total = sent;
    expect(unreadable).toEqual([]);
    for (const device of devices) {
      const messages = (await world.fetchAll(device)).slice(already);
      expect(messages).toHaveLength(total);
      const texts = await Promise.all(messages.map((m) => world.decrypt(device, m)));
      for (let i = 0; i < total; i++)
        expect(texts).toContainEqual(expect.stringContaining(`Load message ${i}.`));
    }
  }, 120_000);
});
