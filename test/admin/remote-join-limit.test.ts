/**
 * The per-address limit on remote list joins (`POST /v1/list-joins/remote`,
 * src/admin/list-remote.ts) is one limit for the whole gateway, like the other rate
 * limits: two admin servers (as two gateway processes) on a real redis-server, and two
 * on one primary over the IPC link of the SQLite key store (PrimaryLink and PrimaryShared
 * joined by a cloning, asynchronous channel, as in test/gateway/primary-link.test.ts),
 * let one client address REMOTE_JOINS_PER_MINUTE joins between them, not that many each.
 * Admin servers without shared buckets keep their own (one process's limit).
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { askingRateLimiter } from '../../src/admin/ipc-rate-limit.js';
import { REMOTE_JOINS_PER_MINUTE, REMOTE_JOIN_LIMIT } from '../../src/admin/list-remote.js';
import type { RateLimiter } from '../../src/admin/rate-limit.js';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { redisRateLimiter } from '../../src/admin/shared-rate-limit.js';
import { loadOrCreateGatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { tempDir } from '../helpers/tmp.js';
import { inProcessPrimary } from '../helpers/primary-ipc.js';

const tmp = tempDir('recrypt-remote-join-limit-');
let redis: RedisServer;
let keyStore: KeyStore;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  redis = await startRedis();
  keyStore = await openKeyStore(
    { kind: 'sqlite', path: 'keys.sqlite' },
    { gatewayKey: loadOrCreateGatewayKey(tmp.path), dataDir: tmp.path },
  );
});
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(async () => {
  await keyStore.close();
  await redis.dispose();
  tmp.remove();
});

/** A public admin listener as a gateway process runs it, with the given remote-join buckets. */
async function adminProcess(remoteJoinLimiter?: RateLimiter): Promise<AdminServer> {
  const server = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    insecureHttp: true,
    audiences: ['public'],
    keyStore,
    adminToken: 'a'.repeat(64),
    imapSettings: { host: 'gw.test', port: 993, starttlsPort: 143 },
    ...(remoteJoinLimiter === undefined ? {} : { remoteJoinLimiter }),
  });
  cleanup.push(() => server.close());
  return server;
}

/**
 * Joins from 127.0.0.1 (a bad invite: refused with 400 once past the limit's check),
 * spread over `servers` in turn, until the first 429; how many went through before it,
 * and how long that took (the buckets refill one join every 60/limit seconds meanwhile).
 */
async function joinsUntilRefused(servers: AdminServer[]) {
  const started = Date.now();
  for (let i = 0; i < 4 * REMOTE_JOINS_PER_MINUTE; i++) {
    const server = servers[i % servers.length]!;
    const response = await fetch(`http://127.0.0.1:${server.port}/v1/list-joins/remote`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ invite: 'x'.repeat(40) }),
    });
    const text = await response.text();
    if (response.status === 429) {
      expect(text).toContain('too many remote joins from this address');
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      return { through: i, elapsedMs: Date.now() - started };
    }
    expect(response.status).toBe(400);
  }
  throw new Error('never refused');
}

/** At most this many can go through: the limit, plus what refilled while the joins ran. */
const allowedWithin = (elapsedMs: number) =>
  REMOTE_JOINS_PER_MINUTE + Math.ceil(elapsedMs / (60_000 / REMOTE_JOIN_LIMIT.perMinute));

async function redisLimiter(prefix: string): Promise<RateLimiter> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  cleanup.push(() => client.disconnect());
  return redisRateLimiter(client, { prefix, scope: 'remote-join', settings: REMOTE_JOIN_LIMIT });
}

/** A primary and `count` workers' rate limiters over a cloning, asynchronous channel. */
function primaryWithWorkers(count: number): RateLimiter[] {
  return inProcessPrimary(count).workers.map((link) => {
    return askingRateLimiter((question) => link.ask(question), {
      scope: 'remote-join',
      settings: REMOTE_JOIN_LIMIT,
      onError: (error) => {
        throw error;
      },
    });
  });
}

describe('the remote-join limit across gateway processes', () => {
  it('is one limit per address through Redis', async () => {
    const servers = [
      await adminProcess(await redisLimiter('rj1:')),
      await adminProcess(await redisLimiter('rj1:')),
    ];
    const { through, elapsedMs } = await joinsUntilRefused(servers);
    expect(through).toBeGreaterThanOrEqual(REMOTE_JOINS_PER_MINUTE);
    expect(through).toBeLessThanOrEqual(allowedWithin(elapsedMs));
    // Both processes refuse that address now.
    for (const server of servers)
      expect((await joinsUntilRefused([server])).through).toBeLessThanOrEqual(1);
  });

  it('is one limit per address through the primary (SQLite key store)', async () => {
    const [a, b] = primaryWithWorkers(2);
    const servers = [await adminProcess(a), await adminProcess(b)];
    const { through, elapsedMs } = await joinsUntilRefused(servers);
    expect(through).toBeGreaterThanOrEqual(REMOTE_JOINS_PER_MINUTE);
    expect(through).toBeLessThanOrEqual(allowedWithin(elapsedMs));
  });

  it('is this process’s own without a shared store', async () => {
    const servers = [await adminProcess(), await adminProcess()];
    // Each has its own buckets: twice the limit goes through the two.
    const { through } = await joinsUntilRefused(servers);
    expect(through).toBeGreaterThanOrEqual(2 * REMOTE_JOINS_PER_MINUTE);
  });
});
