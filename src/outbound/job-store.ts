/**
 * Where the outbound queue keeps its jobs: the one interface the worker and the queue code
 * against, with two implementations under the same contract tests
 * (test/outbound/job-store-contract.test.ts):
 *
 * * `QueueStore` (queue-store.ts): a directory on local disk, for the embedded
 *   single-process gateway (SQLite key store). One process per directory.
 * * `RedisQueueStore` (redis-queue-store.ts): Redis, when the key store is Redis, so that
 *   every gateway process on that Redis sees one queue; a lease decides which process
 *   attempts a job (docs/outbound.md "Several gateway processes").
 */
import type { JobMeta, JobState, NewJob } from './queue-store.js';

export interface JobStore {
  /** 'disk' or 'redis', for logs and `recrypt queue`. */
  readonly kind: 'disk' | 'redis';
  /**
   * True when other processes share the jobs: the worker then claims a job before each
   * attempt and takes the stored next-attempt time as the truth over its own schedule.
   */
  readonly shared: boolean;
  /** Writes the jobs durably (whole or not at all) as pending or prepared. */
  write(jobs: NewJob[], into: 'pending' | 'prepared', now: number): Promise<JobMeta[]>;
  /** prepared → pending; idempotent; throws for a job that is neither. */
  commit(ids: string[]): Promise<void>;
  /** Deletes prepared jobs. */
  abort(ids: string[]): Promise<void>;
  /** Deletes a pending job (absent is fine). */
  remove(id: string): Promise<void>;
  /** Records an attempt's outcome (attempts, lastError, nextAttempt). */
  update(meta: JobMeta): Promise<void>;
  /** Names of pending jobs (ids, or junk that read() calls corrupt). */
  listPending(): Promise<string[]>;
  /**
   * A shared store's schedule in one read: pending job → next attempt. The worker polls it
   * to learn what other processes queued, attempted or flushed.
   */
  schedule?(): Promise<Map<string, number>>;
  read(name: string): Promise<JobState>;
  /** The bytes to send: a file nodemailer streams, or the bytes themselves. */
  messageSource(id: string): Promise<{ path: string } | Buffer>;
  /** The original's header block (at most `limit` bytes), for a DSN. */
  readHeaders(id: string, limit?: number): Promise<Buffer>;
  /** Moves an unreadable job aside; returns where it went. */
  moveToQuarantine(name: string, now: number): Promise<string>;
  /** Deletes uncommitted jobs and unfinished writes older than `staleMs`; returns their names. */
  sweepStale(staleMs: number): Promise<string[]>;
  /** True once per operator flush request (consumed). */
  takeFlushRequest(): Promise<boolean>;
  /** Asks every process to make every job due now (what `recrypt queue flush` does). */
  requestFlush(): Promise<void>;
  /**
   * Takes the job for one attempt for `leaseMs`; false when another process holds it.
   * Always true for a store that is not shared.
   */
  claim(id: string, leaseMs: number): Promise<boolean>;
  /** Extends a claim this process holds; false when it was lost (expired and taken). */
  renew(id: string, leaseMs: number): Promise<boolean>;
  /** Gives a claim back (absent or lost is fine). */
  release(id: string): Promise<void>;
  /** Makes every pending job due at `now` in the store (shared stores; a no-op on disk). */
  makeAllDue(now: number): Promise<void>;
  /** Committed jobs waiting, as the store counts them (every process's). */
  countPending(): Promise<number>;
  close(): Promise<void>;
}
