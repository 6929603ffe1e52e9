/**
 * The operator's view of the outbound queue (docs/outbound.md), read from the queue
 * directory on the gateway machine: the jobs waiting, and a flush request the running
 * gateway picks up at its next pass (within a minute). Reads only: the running gateway
 * owns the queue, so this never moves or sends a job itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueueStore, type JobMeta } from '../../outbound/queue-store.js';
import type { OperatorContext } from './context.js';

export const queueDirOf = (context: OperatorContext): string => join(context.dataDir, 'queue');

export interface QueueListing {
  jobs: JobMeta[];
  /** Entries of pending/ that could not be read (the gateway quarantines them). */
  unreadable: Array<{ id: string; reason: string }>;
}

export async function listQueue(context: OperatorContext): Promise<QueueListing> {
  const store = await QueueStore.open(queueDirOf(context));
  const listing: QueueListing = { jobs: [], unreadable: [] };
  for (const name of await store.listPending()) {
    const state = await store.read(name);
    if (state.kind === 'ok') listing.jobs.push(state.meta);
    else if (state.kind === 'corrupt') listing.unreadable.push({ id: name, reason: state.reason });
  }
  listing.jobs.sort((a, b) => a.nextAttempt - b.nextAttempt);
  return listing;
}

export function requestFlush(context: OperatorContext): string {
  const file = join(queueDirOf(context), 'flush');
  writeFileSync(file, '', { mode: 0o600 });
  return file;
}
