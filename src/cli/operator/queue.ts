/**
 * The operator's view of the outbound queue (docs/outbound.md): the jobs waiting, and a
 * flush request the running gateway picks up at its next pass. The queue is where the
 * gateway keeps it: the queue directory on this machine (SQLite key store), or Redis,
 * shared by every gateway process (Redis key store). Reads only: the running gateways
 * own the queue, so this never moves or sends a job itself.
 */
import { join } from 'node:path';
import { createRedisClient } from '../../keystore/redis/connect.js';
import { DEFAULT_PREFIX } from '../../keystore/redis/keys.js';
import type { JobStore } from '../../outbound/job-store.js';
import { QueueStore, type JobMeta } from '../../outbound/queue-store.js';
import { RedisQueueStore } from '../../outbound/redis-queue-store.js';
import type { OperatorContext } from './context.js';

export const queueDirOf = (context: OperatorContext): string => join(context.dataDir, 'queue');

export interface QueueListing {
  /** 'disk': this machine's queue directory; 'redis': the queue every gateway process shares. */
  where: 'disk' | 'redis';
  jobs: JobMeta[];
  /** Pending entries that could not be read (the gateway quarantines them). */
  unreadable: Array<{ id: string; reason: string }>;
}

/** Opens the queue the gateway of this config uses; `done` closes what was opened. */
async function openQueue(
  context: OperatorContext,
): Promise<{ store: JobStore; where: string; done: () => Promise<void> }> {
  const settings = context.config.keyStore;
  if (settings.kind === 'sqlite') {
    const dir = queueDirOf(context);
    return {
      store: await QueueStore.open(dir),
      where: join(dir, 'flush'),
      done: () => Promise.resolve(),
    };
  }
  const client = createRedisClient(settings, 'recrypt-operator');
  client.on('error', () => undefined);
  await client.connect();
  return {
    store: new RedisQueueStore({ client, prefix: DEFAULT_PREFIX }),
    where: 'in Redis, for every gateway process',
    done: async () => {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

export async function listQueue(context: OperatorContext): Promise<QueueListing> {
  const { store, done } = await openQueue(context);
  try {
    const listing: QueueListing = { where: store.kind, jobs: [], unreadable: [] };
    for (const name of await store.listPending()) {
      const state = await store.read(name);
      if (state.kind === 'ok') listing.jobs.push(state.meta);
      else if (state.kind === 'corrupt')
        listing.unreadable.push({ id: name, reason: state.reason });
    }
    listing.jobs.sort((a, b) => a.nextAttempt - b.nextAttempt);
    return listing;
  } finally {
    await done();
  }
}

/** Stores a flush request; resolves with where it went (the flush file, or Redis). */
export async function requestFlush(context: OperatorContext): Promise<string> {
  const { store, where, done } = await openQueue(context);
  try {
    await store.requestFlush();
    return where;
  } finally {
    await done();
  }
}
