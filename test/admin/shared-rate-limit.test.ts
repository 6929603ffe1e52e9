/**
 * Rate limits shared through a real redis-server (src/admin/shared-rate-limit.ts): two
 * limiters on two connections (two gateway processes) take from one bucket per client;
 * scopes and clients have buckets of their own; the keys hold no address; with Redis down
 * each process limits alone, and shares again once it is back.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisRateLimiter } from '../../src/admin/shared-rate-limit.js';
import type { RateLimiter } from '../../src/admin/rate-limit.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
const clients: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await redis.dispose();
});

/** As the gateway connects it (src/gateway/shared-state.ts): no offline queue, fail fast. */
async function processLimiter(
  prefix: string,
  scope = 'admin',
  errors: unknown[] = [],
): Promise<RateLimiter> {
  const client = new Redis(redis.url, {
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  client.on('error', () => undefined);
  clients.push(client);
  await client.connect();
  return redisRateLimiter(client, {
    prefix,
    scope,
    // One token an hour after the burst: nothing refills during the test.
    settings: { perMinute: 1 / 60, burst: 3 },
    onError: (error) => errors.push(error),
  });
}

describe('shared rate limit', () => {
  it('gives a client one bucket across processes', async () => {
    const a = await processLimiter('p1:');
    const b = await processLimiter('p1:');
    const verdicts = [];
    for (const limiter of [a, b, a, b, a]) verdicts.push(await limiter.take('192.0.2.7'));
    expect(verdicts.map((v) => v.allowed)).toEqual([true, true, true, false, false]);
    const refused = verdicts[3]!;
    expect(refused.allowed === false && refused.retryAfterSeconds).toBeGreaterThan(3000);
    // Another client, and another scope, still have their own full buckets.
    expect((await b.take('198.51.100.1')).allowed).toBe(true);
    const submission = await processLimiter('p1:', 'submission');
    expect((await submission.take('192.0.2.7')).allowed).toBe(true);
  });

  it('keeps addresses out of the key space, and forgets a bucket once it would be full', async () => {
    const a = await processLimiter('p2:');
    await a.take('alice@example.org');
    const probe = new Redis(redis.url);
    clients.push(probe);
    const keys = await probe.keys('p2:*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^p2:rate:admin:[A-Za-z0-9_-]{43}$/);
    expect(keys[0]).not.toContain('alice');
    const ttl = await probe.pttl(keys[0]!);
    // One token missing at one an hour: refilled (and forgotten) about an hour later.
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_601_000);
  });

  it('limits each process alone while Redis is down, and shares again after', async () => {
    const errors: unknown[] = [];
    const a = await processLimiter('p3:', 'admin', errors);
    const b = await processLimiter('p3:', 'admin', errors);
    await redis.stop();
    try {
      // Each process's own bucket of 3: the limit holds, per process.
      for (const limiter of [a, b]) {
        const allowed = [];
        for (let i = 0; i < 4; i++) allowed.push((await limiter.take('192.0.2.9')).allowed);
        expect(allowed).toEqual([true, true, true, false]);
      }
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await redis.start();
    }
    await waitForConnection();
    const shared = [];
    for (const limiter of [a, b, a, b]) shared.push((await limiter.take('192.0.2.10')).allowed);
    expect(shared).toEqual([true, true, true, false]);
  });
});

async function waitForConnection(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (clients.some((c) => c.status !== 'ready' && c.status !== 'end')) {
    if (Date.now() > deadline) throw new Error('clients did not reconnect');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
