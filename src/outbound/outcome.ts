/**
 * What one attempt's outcome does to its job, on disk first: sent → the job is deleted;
 * temporary → attempts, last error and the next attempt (exponential backoff with
 * jitter) are written; permanent, or older than bounceAfter → a DSN is queued to the
 * return path (none for the null sender: no bounce loops) and the job is deleted. The
 * worker (worker.ts) decides when to attempt; logs name the job, recipient and reply,
 * never content.
 */
import type { Logger } from 'pino';
import { buildDsn } from './dsn.js';
import type { OutboundMetrics } from './metrics.js';
import type { JobStore } from './job-store.js';
import type { JobMeta } from './queue-store.js';
import type { AttemptOutcome, TlsSettings } from './smtp-client.js';
import type { OutboundMessage } from './types.js';

type Failure = Extract<AttemptOutcome, { kind: 'failed' }>;

export interface OutcomeContext {
  store: JobStore;
  logger: Logger;
  metrics: OutboundMetrics;
  now: () => number;
  retryInitialMs: number;
  retryMaxMs: number;
  bounceAfterMs: number;
  tls: TlsSettings;
  /** Queues and commits a DSN (the queue's own enqueue). */
  enqueue: (messages: OutboundMessage[]) => Promise<string[]>;
  /** Sets the job's next attempt in the worker's schedule. */
  reschedule(id: string, at: number): void;
  /** Drops the job from the worker's schedule. */
  forget(id: string): void;
}

/** Records the outcome of the attempt on `job` (as read before that attempt). */
export async function recordOutcome(
  ctx: OutcomeContext,
  job: JobMeta,
  outcome: AttemptOutcome,
): Promise<void> {
  const attempted: JobMeta = { ...job, attempts: job.attempts + 1 };
  if (outcome.kind === 'sent') {
    await removeJob(ctx, job.id);
    ctx.metrics.deliveries.inc({ outcome: 'sent' });
    ctx.logger.info(
      {
        job: job.id,
        to: job.to,
        host: outcome.host,
        reply: outcome.reply,
        attempts: attempted.attempts,
      },
      'outbound message delivered',
    );
    return;
  }
  const expired = ctx.now() - job.created >= ctx.bounceAfterMs;
  if (outcome.permanent || expired) {
    await fail(ctx, attempted, outcome, expired && !outcome.permanent);
    return;
  }
  await defer(ctx, attempted, outcome);
}

async function defer(ctx: OutcomeContext, job: JobMeta, failure: Failure): Promise<void> {
  const now = ctx.now();
  const backoff = Math.min(ctx.retryMaxMs, ctx.retryInitialMs * 2 ** (job.attempts - 1));
  // Jitter spreads the retries of many jobs that failed together (a remote outage).
  const delay = Math.round(backoff * (1 - 0.25 * Math.random()));
  const nextAttempt = Math.min(now + delay, job.created + ctx.bounceAfterMs);
  await ctx.store.update({ ...job, nextAttempt, lastError: failure.reason });
  ctx.reschedule(job.id, nextAttempt);
  ctx.metrics.deliveries.inc({ outcome: 'deferred' });
  ctx.logger.warn(
    {
      job: job.id,
      to: job.to,
      reply: failure.reason,
      attempts: job.attempts,
      nextAttempt: new Date(nextAttempt).toISOString(),
    },
    'outbound message deferred',
  );
}

async function fail(
  ctx: OutcomeContext,
  job: JobMeta,
  failure: Failure,
  expired: boolean,
): Promise<void> {
  const { store, logger } = ctx;
  const fields = {
    job: job.id,
    to: job.to,
    reply: failure.reason,
    status: failure.status,
    attempts: job.attempts,
    expired,
  };
  if (job.mailFrom === '') {
    await removeJob(ctx, job.id);
    logger.warn(
      fields,
      'outbound message with null sender failed; dropped (no bounce for a bounce)',
    );
    ctx.metrics.deliveries.inc({ outcome: 'dropped' });
    return;
  }
  const dsn = buildDsn({
    job,
    failure: {
      ...failure,
      expired,
      ...(failure.host === undefined ? {} : { remoteMta: failure.host }),
    },
    originalHeaders: await store.readHeaders(job.id),
    reportingMta: ctx.tls.heloName,
    bounceAfterMs: ctx.bounceAfterMs,
    now: ctx.now(),
  });
  // Queued before the job is deleted: a crash in between repeats the bounce, never loses it.
  const [dsnJob] = await ctx.enqueue([
    { mailFrom: '', to: job.mailFrom, message: dsn, origin: { kind: 'dsn', job: job.id } },
  ]);
  await removeJob(ctx, job.id);
  logger.warn(
    { ...fields, returnPath: job.mailFrom, dsnJob },
    'outbound message failed; bounce queued',
  );
  ctx.metrics.deliveries.inc({ outcome: 'bounced' });
}

/** Deletes a finished job (disk first, then the schedule), before its outcome is counted. */
async function removeJob(ctx: OutcomeContext, id: string): Promise<void> {
  await ctx.store.remove(id);
  ctx.forget(id);
}

/** What a log line says of an error: never more than its name, message and code. */
export function errorSummary(error: unknown): { name: string; message: string; code?: string } {
  const failure = error as NodeJS.ErrnoException;
  return {
    name: failure.name,
    message: failure.message,
    ...(failure.code ? { code: failure.code } : {}),
  };
}
