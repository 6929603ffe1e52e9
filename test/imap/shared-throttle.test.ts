/**
 * Login failure counts shared through a real redis-server: two throttles (two gateway
 * processes) see one count per IP and per account; a success anywhere clears the
 * account's; the keys hold no address; Redis down leaves the local counts in force.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisLoginFailures } from '../../src/imap/shared-throttle.js';
import { LoginThrottle } from '../../src/imap/throttle.js';
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
async function processThrottle(prefix: string, errors: unknown[] = []): Promise<LoginThrottle> {
  const client = new Redis(redis.url, {
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  client.on('error', () => undefined);
  clients.push(client);
  await client.connect();
  return new LoginThrottle({
    freeFailures: 2,
    baseDelayMs: 1000,
    maxDelayMs: 8000,
    shared: redisLoginFailures(client, prefix),
    onSharedError: (error) => errors.push(error),
  });
}

describe('login throttling shared through Redis', () => {
  it('failures spread over two processes count as one', async () => {
    const a = await processThrottle('t1:');
    const b = await processThrottle('t1:');
    await a.recordFailureShared('192.0.2.1', 'rita@example.org');
    await b.recordFailureShared('192.0.2.2', 'rita@example.org');
    // Each process alone saw one failure (free); together two: the next attempt waits.
    expect(a.delayMs('192.0.2.3', 'rita@example.org')).toBe(0);
    expect(await a.delayFor('192.0.2.3', 'rita@example.org')).toBe(1000);
    await a.recordFailureShared('192.0.2.3', 'rita@example.org');
    expect(await b.delayFor('192.0.2.4', 'rita@example.org')).toBe(2000);
    // Another account from a fresh IP is not held.
    expect(await b.delayFor('192.0.2.9', 'otto@example.org')).toBe(0);
    // The IP count is shared too.
    await a.recordFailureShared('198.51.100.7', 'x@example.org');
    await b.recordFailureShared('198.51.100.7', 'y@example.org');
    expect(await a.delayFor('198.51.100.7', 'z@example.org')).toBe(1000);
    // A success through one process clears the shared count (another process's own
    // local count stays, as it does today).
    await b.recordSuccessShared('rita@example.org');
    const c = await processThrottle('t1:');
    expect(await c.delayFor('192.0.2.5', 'rita@example.org')).toBe(0);
    expect(await b.delayFor('192.0.2.5', 'rita@example.org')).toBe(0);
  });

  it('keeps no address or IP in Redis, only digests with the window as TTL', async () => {
    const a = await processThrottle('t2:');
    await a.recordFailureShared('203.0.113.5', 'secret.name@example.org');
    const probe = new Redis(redis.url);
    probe.on('error', () => undefined);
    clients.push(probe);
    const keys = await probe.keys('t2:*');
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key).not.toMatch(/secret|203\.0/);
      expect(await probe.get(key)).toBe('1');
      expect(await probe.pttl(key)).toBeGreaterThan(0);
    }
  });

  it('Redis down: logins go on with the local counts, the error is reported', async () => {
    const errors: unknown[] = [];
    const a = await processThrottle('t3:', errors);
    await a.recordFailureShared('192.0.2.50', 'down@example.org');
    await a.recordFailureShared('192.0.2.50', 'down@example.org');
    await redis.stop();
    try {
      expect(await a.delayFor('192.0.2.50', 'down@example.org')).toBe(1000);
      await a.recordFailureShared('192.0.2.50', 'down@example.org');
      expect(a.delayMs('192.0.2.50', 'down@example.org')).toBe(2000);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await redis.start();
    }
  });
});
