/**
 * What several gateway processes must share beyond the key store (docs/deployment.md
 * "Several gateway processes"): the outbound queue, moderated lists' held posts, the
 * login failure counts and the rate limits. With a Redis key store they live in that Redis, under the key
 * store's prefix, through one more connection of their own; with SQLite the queue and
 * held posts stay in the data directory (every process of one machine reads it), and the
 * counts and rate limits in memory: this process's, or with several processes the
 * primary's, which the workers ask over cluster IPC (`primary`: primary-link.ts).
 */
import { join } from 'node:path';
import { askingRateLimiter } from '../admin/ipc-rate-limit.js';
import type { RateLimiter, RateLimitSettings } from '../admin/rate-limit.js';
import { redisRateLimiter } from '../admin/shared-rate-limit.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { SharedLoginFailures } from '../imap/throttle.js';
import { askingLoginFailures } from '../imap/ipc-throttle.js';
import { redisLoginFailures } from '../imap/shared-throttle.js';
import { createRedisClient } from '../keystore/redis/connect.js';
import { DEFAULT_PREFIX } from '../keystore/redis/keys.js';
import { FileHeldPostStore } from '../lists/held-posts.js';
import type { HeldPostStore } from '../lists/ports.js';
import { RedisHeldPostStore } from '../lists/redis-held-posts.js';
import { RedisQueueStore, type JobStore } from '../outbound/index.js';
import { claimingHeldPosts } from './held-claims.js';
import type { PrimaryLink } from './primary-link.js';

export interface SharedState {
  /** `primary`: SQLite, several processes, the counts held by the primary. */
  kind: 'local' | 'primary' | 'redis';
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

/**
 * Jobs another process queued (and, with Redis, then died with: plus the lease) are
 * picked up this soon by the process that delivers.
 */
export const SHARED_QUEUE_POLL_MS = 5_000;

/**
 * `primary`: this process is a worker of several with the SQLite key store; the counts
 * and rate limits are the primary's.
 */
export async function openSharedState(
  config: GatewayConfig,
  logger: Logger,
  primary?: PrimaryLink,
): Promise<SharedState> {
  const listLogger = logger.child({ part: 'lists' });
  const rateLimitUnavailable = (scope: string) => (error: unknown) =>
    logger.warn(
      { err: (error as Error).message, scope },
      'shared rate limit unavailable: this process limits alone',
    );
  const settings = config.keyStore;
  if (settings.kind === 'sqlite') {
    const held = new FileHeldPostStore({ dataDir: config.dataDir, logger: listLogger });
    const close = () => Promise.resolve();
    if (primary === undefined) return { kind: 'local', held, close };
    const ask = (question: Parameters<PrimaryLink['ask']>[0]) => primary.ask(question);
    return {
      kind: 'primary',
      // Claimed through the primary, so that two workers never approve one post at once.
      held: claimingHeldPosts(held, ask),
      loginFailures: askingLoginFailures(ask),
      rateLimiter: (scope, rateSettings) =>
        askingRateLimiter(ask, {
          scope,
          settings: rateSettings,
          onError: rateLimitUnavailable(scope),
        }),
      close,
    };
  }
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
        onError: rateLimitUnavailable(scope),
      }),
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/** The queue directory, for the disk store and for `recrypt queue` without Redis. */
export const queueDirectory = (dataDir: string): string => join(dataDir, 'queue');
