/**
 * What several gateway processes must share beyond the key store (docs/deployment.md
 * "Several gateway processes"): the outbound queue, moderated lists' held posts, the
 * login failure counts and the rate limits. With a Redis key store they live in that Redis, under the key
 * store's prefix, through one more connection of their own; with SQLite (one process)
 * the queue and held posts stay in the data directory and the counts in memory.
 */
import { join } from 'node:path';
import type { RateLimiter, RateLimitSettings } from '../admin/rate-limit.js';
import { redisRateLimiter } from '../admin/shared-rate-limit.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { SharedLoginFailures } from '../imap/throttle.js';
import { redisLoginFailures } from '../imap/shared-throttle.js';
import { createRedisClient } from '../keystore/redis/connect.js';
import { DEFAULT_PREFIX } from '../keystore/redis/keys.js';
import { FileHeldPostStore } from '../lists/held-posts.js';
import type { HeldPostStore } from '../lists/ports.js';
import { RedisHeldPostStore } from '../lists/redis-held-posts.js';
import { RedisQueueStore, type JobStore } from '../outbound/index.js';

export interface SharedState {
  kind: 'local' | 'redis';
  /** The queue's store; undefined: the queue directory `<dataDir>/queue`. */
  queueStore?: JobStore;
  /** How often the queue worker looks for jobs other processes queued or changed. */
  queuePollMs?: number;
  held: HeldPostStore;
  loginFailures?: SharedLoginFailures;
  /** Rate limits every process takes from (undefined: each process its own). */
  rateLimiter?(scope: string, settings: RateLimitSettings): RateLimiter;
  close(): Promise<void>;
}

/** Jobs another process queued and then died with are picked up this soon (plus the lease). */
const SHARED_QUEUE_POLL_MS = 5_000;

export async function openSharedState(config: GatewayConfig, logger: Logger): Promise<SharedState> {
  const listLogger = logger.child({ part: 'lists' });
  const settings = config.keyStore;
  if (settings.kind === 'sqlite')
    return {
      kind: 'local',
      held: new FileHeldPostStore({ dataDir: config.dataDir, logger: listLogger }),
      close: () => Promise.resolve(),
    };
  const client = createRedisClient(settings, 'recrypt-shared');
  // Without a listener ioredis prints every reconnect failure to the console.
  client.on('error', (err: Error) =>
    logger.warn({ err: err.message }, 'shared state connection problem'),
  );
  await client.connect();
  return {
    kind: 'redis',
    queueStore: new RedisQueueStore({ client, prefix: DEFAULT_PREFIX }),
    queuePollMs: SHARED_QUEUE_POLL_MS,
    held: new RedisHeldPostStore({ client, prefix: DEFAULT_PREFIX, logger: listLogger }),
    loginFailures: redisLoginFailures(client, DEFAULT_PREFIX),
    rateLimiter: (scope, rateSettings) =>
      redisRateLimiter(client, {
        prefix: DEFAULT_PREFIX,
        scope,
        settings: rateSettings,
        onError: (error) =>
          logger.warn(
            { err: (error as Error).message, scope },
            'shared rate limit unavailable: this process limits alone',
          ),
      }),
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/** The queue directory, for the disk store and for `recrypt queue` without Redis. */
export const queueDirectory = (dataDir: string): string => join(dataDir, 'queue');
