/**
 * Login failure counts in Redis (throttle.ts `SharedLoginFailures`), when the key store
 * is Redis: every gateway process counts into the same keys, so failures spread over
 * processes add up. One key per client IP or account, `<p>throttle:<key>`, an integer
 * with a TTL of the throttle window, renewed by each failure (as the local count is
 * forgotten a window after its last failure). The key holds a digest, not the address.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../keystore/redis/connect.js';
import type { SharedLoginFailures } from './throttle.js';

export function redisLoginFailures(client: RedisClient, prefix = 'recrypt:'): SharedLoginFailures {
  // A digest keeps addresses and IPs out of the key space (and bounds the key length).
  const key = (name: string) =>
    `${prefix}throttle:${createHash('sha256').update(name).digest('base64url')}`;
  return {
    async counts(keys) {
      // One key at a time: in a Cluster the keys sit in different slots.
      return Promise.all(keys.map(async (name) => Number((await client.get(key(name))) ?? 0)));
    },
    async record(keys, windowMs) {
      await Promise.all(
        keys.map(async (name) => {
          const results = await client.multi().incr(key(name)).pexpire(key(name), windowMs).exec();
          const failed = results?.find(([error]) => error !== null);
          if (results === null || failed !== undefined)
            throw failed?.[0] ?? new Error('login failure count was discarded');
        }),
      );
    },
    async clear(name) {
      await client.del(key(name));
    },
  };
}
