/**
 * `recrypt owner rotate --fast` end to end through the real processes: `recrypt start`
 * (embedded store, SQLite key store), the owner's CLI, mail over SMTP and fetched through
 * the proxy with Python's imaplib as each device, read with `openssl cms -decrypt` and the
 * device's own key. Mail from before the rotation stays readable (the proxy picks the key
 * for the group a stored message names), mail after it is encrypted to the new group only,
 * and the profile and SMIMEA record switch with the MX.
 */
import { createHash } from 'node:crypto';
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
  /** The SMIMEA record as `owner init` published it (adding devices does not change it). */
  let recordBefore: string;
  /** The device the fourth test adds, started by the second once the rotation is done. */
  let tabletAdded: Promise<WorldDevice>;

  beforeAll(async () => {
    for (const name of ['openssl', 'python3']) requireBinary(name);
    world = await startRotationWorld(ADDRESS);
    // Independent requests, each its own CLI process: at once rather than one by one.
    [laptop, phone, recordBefore, keyBefore] = await Promise.all([
      world.addDevice('laptop'),
      world.addDevice('phone'),
      smimea(),
      readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE),
    ]);
  }, 180_000);
  afterAll(async () => {
    await tabletAdded?.catch(() => undefined);
    await world?.close();
  });

  /** Every message decrypted with `device`'s key, at once (null where it does not open). */
  const decryptAll = (device: Pick<WorldDevice, 'pem'>, messages: Buffer[]) =>
    Promise.all(messages.map((message) => world.decrypt(device, message)));

  async function smimea(): Promise<string> {
    return ok(
      await world.owner([
        'smimea',
        ADDRESS,
        '--gateway',
        `https://127.0.0.1:${world.ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ]),
    );
  }

  it('a wrong passphrase is refused and nothing changes', async () => {
    const keyFile = join(world.ownerDir, 'owner.key');
    const bytes = readFileSync(keyFile);
    const refused = await world.owner(['owner', 'rotate', '--fast'], {
      RECRYPT_PASSPHRASE: 'not the passphrase',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/wrong passphrase/);
    expect(readFileSync(keyFile)).toEqual(bytes);
    expect(existsSync(`${keyFile}.next`)).toBe(false);
    expect(await smimea()).toBe(recordBefore);
  }, 120_000);

  it('re-keys every device: old mail still reads, new mail is for the new group only', async () => {
    await world.send('before', 'Written before the rotation.\r\n');
    const out = ok(await world.owner(['owner', 'rotate', '--fast']));
    expect(out).toMatch(/^rotated rita@example\.org \(fast\): 2 device\(s\) re-keyed$/m);
    const key = await readOwnerKeyFile(join(world.ownerDir, 'owner.key'), PASSPHRASE);
    expect(key.groupSecret).not.toBe(keyBefore.groupSecret);
    expect(key.formerGroups).toEqual([
      { groupSecret: keyBefore.groupSecret, groupCertificate: keyBefore.groupCertificate },
    ]);
    expect(existsSync(join(world.ownerDir, 'owner.key.next'))).toBe(false);
    // The fourth test's device, added after the rotation while the checks below run.
    tabletAdded = world.addDevice('tablet');
    // The published profile and the SMIMEA record name the new group certificate.
    const [recordAfter, shown] = await Promise.all([
      smimea(),
      world.owner([
        'profile',
        'show',
        '--gateway',
        `https://127.0.0.1:${world.ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ]),
      world.send('after', 'Written after the rotation.\r\n'),
    ]);
    expect(recordAfter).not.toBe(recordBefore);
    const profile = JSON.parse(ok(shown)) as Record<string, unknown>;
    expect(JSON.stringify(profile)).toContain(Buffer.from(key.groupCertificate).toString('base64'));

    const oldGroup = groupPem(
      world.root,
      'old-group',
      keyBefore.groupSecret,
      keyBefore.groupCertificate,
    );
    const newGroup = groupPem(world.root, 'new-group', key.groupSecret, key.groupCertificate);
    // Each device through its own IMAP session: both at once.
    await Promise.all(
      [laptop, phone].map(async (device) => {
        const [before, after] = await world.fetchAll(device);
        const [byDevice, byDeviceAfter, byOld, byNew, byOldAfter] = await Promise.all([
          world.decrypt(device, before!),
          world.decrypt(device, after!),
          world.decrypt({ pem: oldGroup }, before!),
          world.decrypt({ pem: newGroup }, after!),
          world.decrypt({ pem: oldGroup }, after!),
        ]);
        expect(byDevice).toContain('Written before the rotation.');
        expect(byDeviceAfter).toContain('Written after the rotation.');
        // What the MX stored: the old message for the old group, the new one for the new.
        expect(byOld).toContain('before the rotation');
        expect(byNew).toContain('after the rotation');
        expect(byOldAfter).toBeNull();
      }),
    );
  }, 180_000);

  it('mail its sender encrypted to the old group (an older profile) is stored as it is and reads', async () => {
    const original = Buffer.from(
      `From: eve@sender.example\r\nTo: ${ADDRESS}\r\nSubject: stale profile\r\n\r\nEncrypted to the old group by its sender.\r\n`,
    );
    const raw = Buffer.from(wrapMessage(original, keyBefore.groupCertificate));
    await world.sendRaw(raw);
    await Promise.all(
      [laptop, phone].map(async (device) => {
        const messages = await world.fetchAll(device);
        expect(messages).toHaveLength(3);
        expect(await world.decrypt(device, messages[2]!)).toContain(
          'Encrypted to the old group by its sender.',
        );
      }),
    );
  }, 120_000);

  it('a device added after the rotation reads the mail from before it too', async () => {
    const tablet = await tabletAdded;
    const messages = await world.fetchAll(tablet);
    expect(messages).toHaveLength(3);
    const texts = await decryptAll(tablet, messages);
    expect(texts[0]).toContain('Written before the rotation.');
    expect(texts[1]).toContain('Written after the rotation.');
    expect(texts[2]).toContain('old group by its sender');
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
    // The same fetched bytes open the same way for the same key: each copy a device
    // fetches is decrypted once, however often the loop below fetches it again.
    const opened = new Map<string, Promise<string | null>>();
    const decryptOnce = (device: WorldDevice, message: Buffer) => {
      const id = `${device.name} ${createHash('sha256').update(message).digest('hex')}`;
      let text = opened.get(id);
      if (text === undefined) opened.set(id, (text = world.decrypt(device, message)));
      return text;
    };
    const unreadable: string[] = [];
    const fetcher = (async () => {
      while (sending) {
        for (const device of devices) {
          const texts = await Promise.all(
            (await world.fetchAll(device)).map((message) => decryptOnce(device, message)),
          );
          for (const text of texts) if (text === null) unreadable.push(device.name);
        }
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
      const texts = await Promise.all(messages.map((m) => decryptOnce(device, m)));
      for (let i = 0; i < total; i++)
        expect(texts).toContainEqual(expect.stringContaining(`Load message ${i}.`));
    }
  }, 120_000);
});
