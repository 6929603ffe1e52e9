/**
 * The same CLI flow with the key store in a throwaway redis-server (the production
 * engine): user add → owner init → device add → openssl reads the recrypted message with
 * the .p12's key → the gateway's Redis holds nothing that decrypts it → device revoke →
 * the rk is gone.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  WRAP_ENCODING_OF_CLIENT,
  envelopeForGroup,
  recryptDer,
  recryptMessage,
  wrapMessage,
} from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { addDeviceViaCli, enrolViaCli, startCliWorld, type CliWorld } from '../helpers/cli-flow.js';
import { filesUnder, keysThatDecrypt, scalarCandidates } from '../helpers/cli-secret-scan.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const ADDRESS = 'rita@example.org';
const original = readFileSync(new URL('../fixtures/cli/message.eml', import.meta.url));

/** Every value under every key of the Redis database, as raw bytes. */
async function redisValues(url: string): Promise<Buffer[]> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    const values: Buffer[] = [];
    for (const key of await client.keysBuffer('*')) {
      values.push(key);
      const type = await client.type(key);
      if (type === 'string') values.push((await client.getBuffer(key))!);
      else if (type === 'hash') values.push(...Object.values(await client.hgetallBuffer(key)));
      else if (type === 'set') values.push(...(await client.smembersBuffer(key)));
      else if (type === 'zset') values.push(...(await client.zrangeBuffer(key, '0', '-1')));
      else if (type === 'list') values.push(...(await client.lrangeBuffer(key, 0, -1)));
      else throw new Error(`unexpected Redis type ${type}`);
    }
    return values;
  } finally {
    client.disconnect();
  }
}

describe('recrypt CLI end to end (Redis key store)', () => {
  const openssl = requireBinary('openssl');
  let redis: RedisServer;
  let world: CliWorld;

  beforeAll(async () => {
    redis = await startRedis();
    world = await startCliWorld({ kind: 'redis', url: redis.url });
  });
  afterAll(async () => {
    await world?.close();
    await redis?.dispose();
  });

  it('enrols, adds a device that openssl reads with, holds no secret, revokes', async () => {
    expect(world.gateway.keyStore.kind).toBe('redis');
    const owner = await enrolViaCli(world, ADDRESS);
    const device = await addDeviceViaCli(owner, 'desktop', 'outlook');
    const { keyStore } = world.gateway;
    const user = (await keyStore.getUser(ADDRESS))!;
    const record = (await keyStore.getDevice(ADDRESS, device.id))!;
    const keys = await keyStore.keysForDevice(ADDRESS, device.id);
    const deviceKeys = {
      deviceId: Buffer.from(record.deviceId, 'hex'),
      wrapEncoding: WRAP_ENCODING_OF_CLIENT[record.client],
      keys,
    };

    const recrypted = recryptMessage(
      wrapMessage(original, user.owner!.groupCertificate),
      deviceKeys,
    );
    writeFileSync(join(owner.dir, 'recrypted.eml'), recrypted);
    const pass = `pass:${device.p12Password}`;
    execFileSync(openssl, [
      'pkcs12',
      '-in',
      device.p12File,
      '-passin',
      pass,
      '-nodes',
      '-nocerts',
      '-out',
      join(owner.dir, 'd.key'),
    ]);
    execFileSync(openssl, [
      'pkcs12',
      '-in',
      device.p12File,
      '-passin',
      pass,
      '-nodes',
      '-clcerts',
      '-nokeys',
      '-out',
      join(owner.dir, 'd.crt'),
    ]);
    const plain = execFileSync(openssl, [
      'cms',
      '-decrypt',
      '-in',
      join(owner.dir, 'recrypted.eml'),
      '-recip',
      join(owner.dir, 'd.crt'),
      '-inkey',
      join(owner.dir, 'd.key'),
    ]);
    expect(Buffer.compare(plain, original)).toBe(0);

    const candidates = new Set<string>();
    for (const value of await redisValues(redis.url)) scalarCandidates(value, candidates);
    for (const file of filesUnder(world.gateway.config.dataDir))
      scalarCandidates(file.bytes, candidates);
    const stored = envelopeForGroup(original, user.owner!.groupCertificate);
    const targets = [
      { what: 'stored', der: stored, recipientId: Buffer.from(user.owner!.groupId, 'hex') },
      { what: 'recrypted', der: recryptDer(stored, deviceKeys), recipientId: deviceKeys.deviceId },
    ];
    // Everything is gathered: the revocation runs while the search takes its CPU time.
    const revoking = owner.run(['device', 'revoke', device.id]);
    expect(candidates.size).toBeGreaterThan(500);
    expect(keysThatDecrypt(candidates, targets)).toEqual([]);

    const revoke = await revoking;
    expect(revoke.stderr).toBe('');
    expect(revoke.stdout).toContain(`device desktop (id ${device.id}) revoked`);
    expect((await keyStore.keysForDevice(ADDRESS, device.id)).size).toBe(0);
  });
});
