import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayKey,
  type KeyStore,
  KeyStoreUnavailableError,
  openKeyStore,
} from '../../src/keystore/index.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { describeKeyStoreContract } from './contract.js';
import { uniqueAddress } from './fixtures.js';
import { redisHarness } from './redis-harness.js';

describeKeyStoreContract('Redis (single node)', async () => {
  const server = await startRedis();
  return redisHarness(
    { kind: 'redis', url: server.url },
    { url: server.url },
    { stop: () => server.stop(), start: () => server.start() },
    () => server.dispose(),
  );
});

describe('Redis that accepts connections but never answers', () => {
  let server: RedisServer;
  let store: KeyStore;

  beforeAll(async () => {
    server = await startRedis();
    store = await openKeyStore(
      { kind: 'redis', url: server.url },
      { gatewayKey: GatewayKey.generate() },
    );
  });

  afterAll(async () => {
    await store?.close();
    await server?.dispose();
  });

  it('gives KeyStoreUnavailableError by the command timeout, not a hang', async () => {
    const user = await store.addUser({ address: uniqueAddress() });
    server.freeze(true);
    try {
      const error = await store.getUser(user.address).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(KeyStoreUnavailableError);
    } finally {
      server.freeze(false);
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      const got = await store.getUser(user.address).catch((err: unknown) => {
        expect(err).toBeInstanceOf(KeyStoreUnavailableError);
        return undefined;
      });
      if (got !== undefined) {
        expect(got).toEqual(user);
        break;
      }
      if (Date.now() > deadline) throw new Error('store did not recover after the server thawed');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
