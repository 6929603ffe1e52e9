/**
 * End to end, through the real `recrypt` CLI against the real admin server (TLS,
 * SQLite key store made by `recrypt init`): user add → owner init → device add → the
 * .p12 opens with `openssl pkcs12` and its key decrypts with `openssl cms` a message
 * enveloped to the group and recrypted with the uploaded rk → device revoke → the rk is
 * gone.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WRAP_ENCODING_OF_CLIENT, recryptMessage, wrapMessage } from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  addDeviceViaCli,
  enrolViaCli,
  startCliWorld,
  type AddedDeviceOutput,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';

const ADDRESS = 'alice@example.org';
const original = readFileSync(new URL('../fixtures/cli/message.eml', import.meta.url));

describe('recrypt CLI end to end (SQLite key store)', () => {
  const openssl = requireBinary('openssl');
  let world: CliWorld;
  let owner: EnrolledOwner;
  let laptop: AddedDeviceOutput;

  beforeAll(async () => {
    world = await startCliWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  it('user add prints a one-time token and the exact owner command', async () => {
    owner = await enrolViaCli(world, ADDRESS, 'Alice Example');
    const user = await world.gateway.keyStore.getUser(ADDRESS);
    expect(user?.enrolment).toBe('enrolled');
    expect(user?.displayName).toBe('Alice Example');
    expect(statSync(owner.keyFile).mode & 0o777).toBe(0o600);
    const keyFile = JSON.parse(readFileSync(owner.keyFile, 'utf8')) as Record<string, unknown>;
    expect(keyFile).toMatchObject({
      format: 'recrypt-owner-key',
      version: 1,
      cipher: 'aes-256-gcm',
      address: ADDRESS,
    });
    expect(keyFile['kdf']).toMatchObject({ name: 'scrypt' });
    // The profile was signed and published at enrolment.
    expect(await world.gateway.keyStore.getProfile(ADDRESS)).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it('device add writes a .p12 openssl opens, and uploads an rk that recrypts for its key', async () => {
    laptop = await addDeviceViaCli(owner, 'laptop');
    expect(statSync(laptop.p12File).mode & 0o777).toBe(0o600);
    expect(laptop.stdout).toContain(`username: ${ADDRESS}`);
    expect(laptop.stdout).toContain(`server:   ${world.gateway.imap.host}`);
    expect(laptop.stdout).toContain(
      `port:     ${world.gateway.imap.port} (TLS) or ${world.gateway.imap.starttlsPort} (STARTTLS)`,
    );

    const dir = owner.dir;
    const user = (await world.gateway.keyStore.getUser(ADDRESS))!;
    const stored = wrapMessage(original, user.owner!.groupCertificate);
    const device = (await world.gateway.keyStore.getDevice(ADDRESS, laptop.id))!;
    const keys = await world.gateway.keyStore.keysForDevice(ADDRESS, laptop.id);
    expect([...keys.keys()]).toEqual([user.owner!.groupId]);
    const recrypted = recryptMessage(stored, {
      deviceId: Buffer.from(device.deviceId, 'hex'),
      wrapEncoding: WRAP_ENCODING_OF_CLIENT[device.client],
      keys,
    });
    expect(recrypted.length).toBe(stored.length);
    writeFileSync(join(dir, 'stored.eml'), stored);
    writeFileSync(join(dir, 'recrypted.eml'), recrypted);
    // `recrypt read` reads it with the .p12 as well: started now, it runs while openssl works.
    const reading = owner.run(['read', 'recrypted.eml', '--p12', laptop.p12File], {
      RECRYPT_P12_PASSWORD: laptop.p12Password,
    });

    const pass = `pass:${laptop.p12Password}`;
    execFileSync(openssl, [
      'pkcs12',
      '-in',
      laptop.p12File,
      '-passin',
      pass,
      '-nodes',
      '-nocerts',
      '-out',
      join(dir, 'laptop.key'),
    ]);
    execFileSync(openssl, [
      'pkcs12',
      '-in',
      laptop.p12File,
      '-passin',
      pass,
      '-nodes',
      '-clcerts',
      '-nokeys',
      '-out',
      join(dir, 'laptop.crt'),
    ]);
    expect(readFileSync(join(dir, 'laptop.key'), 'utf8')).toContain('PRIVATE KEY');

    const decrypted = execFileSync(openssl, [
      'cms',
      '-decrypt',
      '-in',
      join(dir, 'recrypted.eml'),
      '-recip',
      join(dir, 'laptop.crt'),
      '-inkey',
      join(dir, 'laptop.key'),
    ]);
    expect(Buffer.compare(decrypted, original)).toBe(0);
    // The device key alone does not read the stored (not recrypted) message.
    const unrecrypted = spawnSync(openssl, [
      'cms',
      '-decrypt',
      '-in',
      join(dir, 'stored.eml'),
      '-recip',
      join(dir, 'laptop.crt'),
      '-inkey',
      join(dir, 'laptop.key'),
    ]);
    expect(unrecrypted.status).not.toBe(0);

    const read = await reading;
    expect(read.stderr).toBe('');
    expect(read.code).toBe(0);
    expect(read.stdout).toBe(original.toString('utf8'));
  });

  it('device list, profile show, smimea and user list report what the gateway holds', async () => {
    // Independent reads (and a republish of the same profile): run side by side.
    const [list, profile, republish, smimea, users] = await Promise.all([
      owner.run(['device', 'list']),
      owner.run(['profile', 'show']),
      owner.run(['profile', 'publish']),
      owner.run(['smimea', ADDRESS]),
      world.operator(['user', 'list']),
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${laptop.id}\\tlaptop\\tstandard\\tactive\\t`, 'm'));

    expect(profile.stderr).toBe('');
    const shown = JSON.parse(profile.stdout) as {
      verified: boolean;
      ProfileMailPublic: { address: string; name: string; connection: { key: string }[] };
    };
    const user = (await world.gateway.keyStore.getUser(ADDRESS))!;
    expect(shown.verified).toBe(true);
    expect(shown.ProfileMailPublic.address).toBe(ADDRESS);
    expect(shown.ProfileMailPublic.name).toBe('Alice Example');
    expect(shown.ProfileMailPublic.connection[0]!.key).toBe(
      Buffer.from(user.owner!.groupCertificate).toString('base64'),
    );

    expect(republish.code).toBe(0);

    expect(smimea.code).toBe(0);
    expect(smimea.stdout.trim()).toMatch(
      /^[0-9a-f]{56}\._smimecert\.example\.org\. IN SMIMEA 3 0 0 [0-9a-f]+$/,
    );
    expect(smimea.stdout).toContain(Buffer.from(user.owner!.groupCertificate).toString('hex'));

    expect(users.stdout).toContain(`${ADDRESS}\tenrolled\t1 device(s)\tAlice Example`);
  });

  it('device revoke deletes the rk at once', async () => {
    const revoke = await owner.run(['device', 'revoke', 'laptop']);
    expect(revoke.stderr).toBe('');
    expect(revoke.code).toBe(0);
    expect((await world.gateway.keyStore.keysForDevice(ADDRESS, laptop.id)).size).toBe(0);
    expect((await world.gateway.keyStore.getDevice(ADDRESS, laptop.id))?.revoked).not.toBeNull();
    // The list and a new device are independent of each other: side by side.
    const [list, again] = await Promise.all([
      owner.run(['device', 'list']),
      // The name is free again for a new device.
      addDeviceViaCli(owner, 'laptop-2'),
    ]);
    expect(list.stdout).toMatch(new RegExp(`^${laptop.id}\\tlaptop\\tstandard\\trevoked `, 'm'));
    expect((await world.gateway.keyStore.keysForDevice(ADDRESS, again.id)).size).toBe(1);
  });

  it('user token needs --reset for an enrolled account; the reset revokes its devices', async () => {
    const refused = await world.operator(['user', 'token', ADDRESS]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/enrolled: a new token needs --reset/);
    expect((await world.gateway.keyStore.listActiveDevices(ADDRESS)).length).toBe(1);
    const reset = await world.operator(['user', 'token', ADDRESS, '--reset']);
    expect(reset.stderr).toBe('');
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain(`reset ${ADDRESS}: 1 device(s) revoked, enrolment open`);
    expect(reset.stdout).toMatch(new RegExp(`recrypt owner init ${ADDRESS} --token [\\w-]{43} `));
    expect(await world.gateway.keyStore.listActiveDevices(ADDRESS)).toEqual([]);
    expect((await world.gateway.keyStore.getUser(ADDRESS))?.enrolment).toBe('pending');
  });

  it('user remove deletes the account', async () => {
    const removed = await world.operator(['user', 'remove', ADDRESS]);
    expect(removed.code).toBe(0);
    expect(await world.gateway.keyStore.getUser(ADDRESS)).toBeNull();
  });
});
