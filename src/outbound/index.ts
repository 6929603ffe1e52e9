/**
 * The outbound queue: copies of list posts for members on other servers, and
 * the gateway's own notices and bounces. `openOutboundQueue` opens (or creates) the queue
 * directory, loads every committed job, and returns the queue; `start()` begins delivery.
 * With `deliver: false` (a worker of several processes, docs/deployment.md "Several
 * processes on one machine") it only writes jobs into the store and keeps nothing of them:
 * the process that delivers reads them from there. How it works and what an operator
 * sees: docs/outbound.md.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import type { Logger } from 'pino';
import type { OutboundConfig } from '../config/schema.js';
import { readSecretFile } from '../gateway/secrets.js';
import { StartupError } from '../gateway/startup-errors.js';
import { type OutboundMetrics, createOutboundMetrics } from './metrics.js';
import type { JobStore } from './job-store.js';
import { JOB_ID, type NewJob, QueueStore } from './queue-store.js';
import { type MxResolver, type RoutingOptions, systemResolver } from './routing.js';
import type { OutboundMessage, OutboundQueue, PreparedBatch } from './types.js';
import { OutboundWorker } from './worker.js';
import { transportSecurityFromConfig } from './transport-security.js';
import { plainResolver } from '../dns/index.js';

export type { OutboundMessage, OutboundQueue, PreparedBatch } from './types.js';
export type { JobStore } from './job-store.js';
export { RedisQueueStore } from './redis-queue-store.js';
export { createOutboundMetrics, type OutboundMetrics } from './metrics.js';
export type { MxResolver } from './routing.js';

export interface OpenOutboundQueueOptions {
  /** The queue directory, e.g. `<dataDir>/queue`; created mode 0700. One gateway process per directory. */
  dir: string;
  /** Where jobs live instead of `dir`: the Redis queue that several processes share (job-store.ts). */
  store?: JobStore;
  config: OutboundConfig;
  logger: Logger;
  /** Default: counted in a private registry. */
  metrics?: OutboundMetrics;
  /** Clock for job times and backoff (ms since the epoch). */
  now?: () => number;
  /** DNS for MX lookups; default node:dns. */
  resolver?: MxResolver;
  /** The gateway's own MX for the domains it serves (routing.ts). */
  localHop?: RoutingOptions['localHop'];
  /** How often the worker re-reads the directory (flush file, jobs changed by hand, stale files). Default 60 s. */
  maintenanceIntervalMs?: number;
  /** Uncommitted (prepared) jobs and unfinished writes older than this are deleted. Default 1 h. */
  staleAfterMs?: number;
  /** close() waits this long for attempts in flight, then cuts them off (they are retried later). Default 10 s. */
  closeGraceMs?: number;
  /**
   * False: this process only queues; another one delivers from the same store. Nothing is
   * read at open and no job is kept in memory once written. Default true.
   */
  deliver?: boolean;
  /**
   * With `deliver: false`: told the jobs just committed (durable, due for the delivering
   * process), so that it can schedule them before its next poll of the store.
   */
  onQueued?: (jobs: QueuedJob[]) => void;
}

/** A job another process should know of: its id and when it is first due. */
export interface QueuedJob {
  id: string;
  nextAttempt: number;
}

export interface OutboundQueueHandle extends OutboundQueue {
  /** Starts delivering (jobs queued before are kept and sent once started). */
  start(): void;
  /** Makes every waiting job due now (what `touch <dir>/flush` does at the next maintenance pass). */
  flush(): void;
  /**
   * Jobs another process just queued in this store (its `onQueued`): scheduled now rather
   * than at the next poll. Ids that are not job ids are ignored; a job that is not in the
   * store is dropped at its attempt. Ignored by a queue that does not deliver.
   */
  noticeQueued(jobs: readonly QueuedJob[]): void;
  /** Jobs this process holds in its schedule (none when it does not deliver). */
  scheduled(): number;
}

const ADDRESS = /^[^\s<>]+@[^\s<>@]+$/;
const LINE_BREAK = /[\r\n]/;

function checkMessage(message: OutboundMessage, index: number): NewJob {
  const problem = (what: string) => new TypeError(`outbound message ${index}: ${what}`);
  if (!ADDRESS.test(message.to)) throw problem('to must be one address (local@domain)');
  if (message.mailFrom !== '' && !ADDRESS.test(message.mailFrom)) {
    throw problem("mailFrom must be an address or '' (the null sender)");
  }
  if (!(message.message instanceof Uint8Array) || message.message.byteLength === 0) {
    throw problem('message must be non-empty bytes');
  }
  for (const [key, value] of Object.entries(message.origin ?? {})) {
    if (typeof value !== 'string' || LINE_BREAK.test(key) || LINE_BREAK.test(value)) {
      throw problem('origin must map names to one-line strings');
    }
  }
  return {
    mailFrom: message.mailFrom,
    to: message.to,
    message: message.message,
    ...(message.origin === undefined ? {} : { origin: { ...message.origin } }),
  };
}

/** A DKIM private key file, checked at start: a broken one would fail every signed delivery. */
function readDkimKey(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
    createPrivateKey(pem);
  } catch (error) {
    throw new StartupError(
      `outbound.dkim: cannot use ${path} as a private key: ${(error as Error).message}`,
    );
  }
  return pem;
}

/** Writes jobs into the store; `committed` is told each batch once it is pending. */
function jobWriter(
  store: JobStore,
  now: () => number,
  logger: Logger,
  committed: (jobs: QueuedJob[]) => void,
): Pick<OutboundQueue, 'enqueue' | 'prepare'> {
  const due = (written: Array<{ id: string; nextAttempt: number }>): QueuedJob[] =>
    written.map((job) => ({ id: job.id, nextAttempt: job.nextAttempt }));
  return {
    async enqueue(messages) {
      const jobs = messages.map(checkMessage);
      const written = await store.write(jobs, 'pending', now());
      committed(due(written));
      logger.debug(
        { jobs: written.map((job) => ({ job: job.id, to: job.to })) },
        'outbound jobs queued',
      );
      return written.map((job) => job.id);
    },
    async prepare(messages): Promise<PreparedBatch> {
      const jobs = messages.map(checkMessage);
      const written = await store.write(jobs, 'prepared', now());
      const ids = written.map((job) => job.id);
      return {
        ids,
        async commit() {
          await store.commit(ids);
          committed(due(written));
        },
        abort: () => store.abort(ids),
      };
    },
  };
}

/**
 * A queue that only takes jobs (`deliver: false`): each is durable in the store when the
 * call returns and this process keeps nothing of it; the delivering process finds it there
 * (told by `onQueued`, else at its next poll of the store).
 */
function enqueueOnly(
  store: JobStore,
  options: OpenOutboundQueueOptions,
  now: () => number,
  logger: Logger,
): OutboundQueueHandle {
  const tell = options.onQueued ?? (() => undefined);
  return {
    ...jobWriter(store, now, logger, (jobs) => {
      try {
        tell(jobs);
      } catch (error) {
        // The jobs are stored: the delivering process's poll still finds them.
        logger.warn({ err: (error as Error).message }, 'outbound jobs queued; no nudge sent');
      }
    }),
    size: () => store.countPending(),
    start: () => undefined,
    // As `recrypt queue flush` does: the delivering process acts on it at its next pass.
    flush: () =>
      void store
        .requestFlush()
        .catch((error: unknown) =>
          logger.error({ err: (error as Error).message }, 'outbound flush not stored'),
        ),
    noticeQueued: () => undefined,
    scheduled: () => 0,
    close: () => Promise.resolve(),
  };
}

export async function openOutboundQueue(
  options: OpenOutboundQueueOptions,
): Promise<OutboundQueueHandle> {
  const { config } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger.child({ part: 'outbound' });
  const metrics = options.metrics ?? createOutboundMetrics();
  const store = options.store ?? (await QueueStore.open(options.dir));
  if (options.deliver === false) return enqueueOnly(store, options, now, logger);
  if (store.shared) metrics.countFrom(() => store.countPending());
  const dkimKeys = new Map(
    Object.entries(config.dkim).map(([domain, key]) => [
      domainToASCII(domain.toLowerCase()) || domain.toLowerCase(),
      {
        domainName: domain.toLowerCase(),
        keySelector: key.selector,
        privateKey: readDkimKey(key.privateKeyFile),
      },
    ]),
  );
  const relayPassword =
    config.relay?.passwordFile === undefined
      ? undefined
      : readSecretFile(config.relay.passwordFile, 'outbound.relay.passwordFile');

  const writer = jobWriter(store, now, logger, (jobs) => {
    for (const job of jobs) worker.add(job.id, job.nextAttempt);
  });
  const enqueue = writer.enqueue;

  const dns = plainResolver(config.resolver);
  const extraCa =
    config.mtaSts.caFile === undefined ? undefined : readFileSync(config.mtaSts.caFile, 'utf8');
  const security = transportSecurityFromConfig(
    config,
    dns,
    extraCa,
    logger,
    join(options.dir, 'mta-sts.json'),
  );

  const worker: OutboundWorker = new OutboundWorker({
    store,
    leaseMs: config.lease,
    concurrency: config.concurrency,
    retryInitialMs: config.retryInitial,
    retryMaxMs: config.retryMax,
    bounceAfterMs: config.bounceAfter,
    dkimKeys,
    tls: {
      heloName: config.heloName ?? hostname(),
      requireTls: config.requireTls,
      verifyTls: config.verifyTls,
      connectTimeout: config.connectTimeout,
      greetingTimeout: config.greetingTimeout,
      socketTimeout: config.socketTimeout,
      ...(extraCa === undefined ? {} : { extraCa }),
    },
    ...(security === undefined ? {} : { transportSecurity: security }),
    routing: {
      config,
      resolver: options.resolver ?? (config.resolver === undefined ? systemResolver : dns),
      ...(relayPassword === undefined ? {} : { relayPassword }),
      ...(options.localHop === undefined ? {} : { localHop: options.localHop }),
    },
    logger,
    metrics,
    now,
    enqueue,
    maintenanceIntervalMs: options.maintenanceIntervalMs ?? 60_000,
    staleAfterMs: options.staleAfterMs ?? 3_600_000,
    closeGraceMs: options.closeGraceMs ?? 10_000,
  });
  await worker.load();
  logger.info(
    {
      ...(store.kind === 'disk' ? { dir: options.dir } : { store: store.kind }),
      jobs: worker.size(),
    },
    'outbound queue opened',
  );

  return {
    ...writer,
    size: () => (store.shared ? store.countPending() : Promise.resolve(worker.size())),
    start: () => worker.start(),
    flush: () => worker.flush(),
    noticeQueued(jobs) {
      for (const job of jobs)
        if (
          typeof job?.id === 'string' &&
          JOB_ID.test(job.id) &&
          typeof job.nextAttempt === 'number' &&
          Number.isFinite(job.nextAttempt)
        )
          worker.add(job.id, job.nextAttempt);
    },
    scheduled: () => worker.size(),
    close: () => worker.close(),
  };
}
