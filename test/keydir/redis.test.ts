/**
 * The Redis key directory against the contract (contract.ts) on a real redis-server; two
 * directories on one Redis (two gateway processes) see each other's certificates, and a
 * record that is not one is skipped, not trusted in part.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisKeyDirectory } from '../../src/keydir/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { keyDirectoryContract, NOW, record } from './contract.js';

let redis: RedisServer;
const clients: Redis[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await redis.dispose();
});

function client(): Redis {
  const made = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  clients.push(made);
  return made;
}

keyDirectoryContract('redis', (now) =>
  Promise.resolve(new RedisKeyDirectory({ client: client(), prefix: `t${n++}:`, now })),
);

it('two processes on one Redis share the directory; a corrupt record is skipped', async () => {
  const a = new RedisKeyDirectory({ client: client(), prefix: 'shared:', now: () => NOW });
  const b = new RedisKeyDirectory({ client: client(), prefix: 'shared:', now: () => NOW });
  const kept = record('jack@c.test', 1);
  await a.remember(kept, 3);
  expect((await b.forAddress('jack@c.test')).map((r) => r.fingerprint)).toEqual([kept.fingerprint]);
  await client().hset('shared:{keydir}:addr:jack@c.test', 'f'.repeat(64), '{"address":1}');
  expect((await b.forAddress('jack@c.test')).map((r) => r.fingerprint)).toEqual([kept.fingerprint]);
});
