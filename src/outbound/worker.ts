/**
 * The delivery worker: keeps the schedule of committed jobs (id → next attempt), runs at
 * most `concurrency` attempts at a time, and hands each outcome to outcome.ts, which
 * records it on disk (sent, deferred with backoff, or bounced).
 *
 * The disk is the truth: each attempt re-reads the job, and a periodic maintenance pass
 * picks up an operator's `touch queue/flush`, jobs added or removed by hand, and sweeps
 * stale uncommitted files. Logs name the job, recipient and reply, never content.
 */
import type { Logger } from 'pino';
import type { OutboundMetrics } from './metrics.js';
import type { JobStore } from './job-store.js';
import type { JobMeta } from './queue-store.js';
import { domainOf, planRoute, type RoutingOptions } from './routing.js';
import { JobSchedule } from './schedule.js';
import {
  type AttemptOutcome,
  ConnectionTracker,
  type DkimKey,
  type Envelope,
  type TlsSettings,
  attemptDelivery,
} from './smtp-client.js';
import { errorSummary, recordOutcome, type OutcomeContext } from './outcome.js';
import type { TransportSecurity } from './transport-security.js';
import type { OutboundMessage } from './types.js';

export interface WorkerOptions {
  store: JobStore;
  /** How long a claim on a shared job lasts; renewed every third of it while attempting. */
  leaseMs: number;
  concurrency: number;
  retryInitialMs: number;
  retryMaxMs: number;
  bounceAfterMs: number;
  tls: TlsSettings;
  /** DKIM keys by envelope sender domain (lower-case ASCII). */
  dkimKeys?: ReadonlyMap<string, DkimKey>;
  routing: RoutingOptions;
  /** MTA-STS and DANE for MX hosts (transport-security.ts); absent: opportunistic TLS only. */
  transportSecurity?: TransportSecurity;
  logger: Logger;
  metrics: OutboundMetrics;
  now: () => number;
  /** Queues and commits a DSN (the queue's own enqueue). */
  enqueue: (messages: OutboundMessage[]) => Promise<string[]>;
  maintenanceIntervalMs: number;
  staleAfterMs: number;
  closeGraceMs: number;
}

/** setTimeout's limit; longer waits are re-armed by the maintenance pass. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class OutboundWorker {
  private readonly schedule = new JobSchedule();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly connections = new ConnectionTracker();
  private timer: NodeJS.Timeout | undefined;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  /** The maintenance pass running now, if any (never two at once; close() waits for it). */
  private maintenance: Promise<void> | undefined;
  private running = false;
  /** Set when close() stopped waiting: late outcomes are not written (the job is retried later). */
  private abandoned = false;

  private readonly outcomeContext: OutcomeContext;

  constructor(private readonly options: WorkerOptions) {
    this.outcomeContext = {
      ...options,
      reschedule: (id, at) => this.schedule.set(id, at),
      forget: (id) => this.forget(id),
    };
  }

  /** Reads every committed job; quarantines the unreadable ones. */
  async load(): Promise<void> {
    await this.reconcile();
    const swept = await this.options.store.sweepStale(this.options.staleAfterMs);
    if (swept.length > 0)
      this.options.logger.info({ swept }, 'stale uncommitted outbound jobs deleted');
  }

  add(id: string, nextAttempt: number): void {
    this.schedule.set(id, nextAttempt);
    this.updateGauge();
    this.pump();
  }

  size(): number {
    return this.schedule.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.maintenanceTimer = setInterval(() => {
      this.maintenance ??= this.maintain().finally(() => (this.maintenance = undefined));
    }, this.options.maintenanceIntervalMs);
    this.maintenanceTimer.unref();
    this.pump();
  }

  /** Makes every waiting job due now (in a shared store for every process). */
  flush(): void {
    const now = this.options.now();
    for (const id of this.schedule.ids()) this.schedule.set(id, now);
    if (this.options.store.shared) {
      this.options.store
        .makeAllDue(now)
        .catch((error: unknown) =>
          this.options.logger.error({ err: errorSummary(error) }, 'outbound flush not stored'),
        )
        .finally(() => this.pump());
      return;
    }
    this.pump();
  }

  async close(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.maintenanceTimer);
    await this.maintenance;
    const settled = Promise.allSettled([...this.inFlight.values()]);
    const grace = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), this.options.closeGraceMs).unref(),
    );
    if ((await Promise.race([settled, grace])) === 'timeout') {
      this.abandoned = true;
      this.connections.closeAll();
      await settled;
    }
  }

  private pump(): void {
    if (!this.running) return;
    const now = this.options.now();
    const free = this.options.concurrency - this.inFlight.size;
    if (free > 0) {
      for (const id of this.schedule.takeDue(now, free, (job) => this.inFlight.has(job))) {
        const attempt = this.run(id)
          .catch((error: unknown) => {
            // A disk error while recording: keep the job and try again later, not in a loop.
            this.options.logger.error(
              { job: id, err: errorSummary(error) },
              'outbound job attempt failed locally',
            );
            if (this.schedule.has(id))
              this.schedule.set(id, this.options.now() + this.options.retryInitialMs);
          })
          .finally(() => {
            this.inFlight.delete(id);
            this.pump();
          });
        this.inFlight.set(id, attempt);
      }
    }
    this.armTimer(now);
  }

  private armTimer(now: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight.size >= this.options.concurrency) return;
    const next = this.schedule.nextTime((job) => this.inFlight.has(job));
    if (next === undefined) return;
    this.timer = setTimeout(() => this.pump(), Math.min(Math.max(0, next - now), MAX_TIMER_MS));
    this.timer.unref();
  }

  private envelopeOf(job: JobMeta, message: Envelope['message']): Envelope {
    const dkim =
      job.mailFrom === '' ? undefined : this.options.dkimKeys?.get(domainOf(job.mailFrom));
    return {
      mailFrom: job.mailFrom,
      to: job.to,
      message,
      ...(dkim === undefined ? {} : { dkim }),
    };
  }

  /**
   * One attempt under a claim: in a shared store another process may hold the job (it is
   * looked at again when that lease would end); the claim is renewed while the attempt
   * runs and given back after its outcome is recorded.
   */
  private async run(id: string): Promise<void> {
    const { store, leaseMs } = this.options;
    if (!(await store.claim(id, leaseMs))) {
      if (this.schedule.has(id)) this.schedule.set(id, this.options.now() + leaseMs);
      return;
    }
    const renewal = store.shared
      ? setInterval(() => this.renewLease(id), Math.max(1, Math.floor(leaseMs / 3)))
      : undefined;
    renewal?.unref();
    try {
      await this.attempt(id);
    } finally {
      clearInterval(renewal);
      await store.release(id).catch(() => undefined);
    }
  }

  /** Extends this process's claim while its attempt runs; says so when it was lost. */
  private renewLease(id: string): void {
    this.options.store
      .renew(id, this.options.leaseMs)
      .then((held) => {
        // docs/outbound.md: the one way (besides a crash after the 2xx) to a duplicate.
        if (!held)
          this.options.logger.warn(
            { job: id },
            'outbound job lease lost during an attempt; another process may send it too',
          );
      })
      .catch((error: unknown) =>
        this.options.logger.warn(
          { job: id, err: errorSummary(error) },
          'outbound job lease not renewed',
        ),
      );
  }

  private async attempt(id: string): Promise<void> {
    const { store } = this.options;
    const state = await store.read(id);
    if (state.kind === 'missing') {
      this.forget(id);
      return;
    }
    if (state.kind === 'corrupt') {
      await this.quarantine(id, state.reason);
      return;
    }
    const job = state.meta;
    // Shared: another process attempted it since this schedule was made; its time wins.
    if (store.shared && job.nextAttempt > this.options.now()) {
      this.schedule.set(id, job.nextAttempt);
      return;
    }
    const routed = await planRoute(job.to, this.options.routing);
    const security = this.options.transportSecurity;
    const plan =
      routed.kind === 'hops' && security !== undefined
        ? await security.secure(domainOf(job.to), routed.hops)
        : routed;
    const outcome: AttemptOutcome =
      plan.kind === 'failed'
        ? {
            kind: 'failed',
            permanent: plan.permanent,
            status: plan.status,
            reason: plan.reason,
            smtpReply: false,
          }
        : await attemptDelivery(
            this.envelopeOf(job, await store.messageSource(id)),
            plan.hops,
            this.options.tls,
            this.connections,
          );
    if (this.abandoned) return;
    await recordOutcome(this.outcomeContext, job, outcome);
  }

  private async quarantine(name: string, reason: string): Promise<void> {
    try {
      const path = await this.options.store.moveToQuarantine(name, this.options.now());
      this.options.logger.error({ job: name, reason, path }, 'unreadable outbound job quarantined');
      this.options.metrics.quarantined.inc();
    } catch (error) {
      this.options.logger.error(
        { job: name, reason, err: errorSummary(error) },
        'unreadable outbound job could not be moved aside',
      );
    }
    this.forget(name);
  }

  private forget(id: string): void {
    this.schedule.delete(id);
    this.updateGauge();
  }

  private updateGauge(): void {
    // A shared store's depth is read from the store when scraped (metrics.ts).
    if (!this.options.store.shared) this.options.metrics.queueSize.set(this.schedule.size);
  }

  /** Brings the schedule in line with pending/ (jobs an operator added, moved back or deleted). */
  private async reconcile(): Promise<void> {
    if (this.options.store.schedule !== undefined) return this.reconcileShared();
    // Only jobs known before the listing can be missing from it (one added meanwhile is not).
    const known = this.schedule.ids();
    const names = await this.options.store.listPending();
    const present = new Set(names);
    for (const id of known) if (!present.has(id) && !this.inFlight.has(id)) this.forget(id);
    for (const name of names) {
      if (this.schedule.has(name) || this.inFlight.has(name)) continue;
      const state = await this.options.store.read(name);
      if (state.kind === 'ok') this.schedule.set(name, state.meta.nextAttempt);
      else if (state.kind === 'corrupt') await this.quarantine(name, state.reason);
    }
    this.updateGauge();
  }

  /**
   * The same for a shared store, from its schedule in one read: jobs other processes
   * queued are read (and checked) once, known ones only take the stored time.
   */
  private async reconcileShared(): Promise<void> {
    const stored = await this.options.store.schedule!();
    for (const id of this.schedule.ids())
      if (!stored.has(id) && !this.inFlight.has(id)) this.forget(id);
    for (const [name, at] of stored) {
      if (this.inFlight.has(name)) continue;
      if (this.schedule.has(name)) {
        if (this.schedule.timeOf(name) !== at) this.schedule.set(name, at);
        continue;
      }
      const state = await this.options.store.read(name);
      if (state.kind === 'ok') this.schedule.set(name, state.meta.nextAttempt);
      else if (state.kind === 'corrupt') await this.quarantine(name, state.reason);
    }
  }

  private async maintain(): Promise<void> {
    try {
      const flush = await this.options.store.takeFlushRequest();
      await this.reconcile();
      const swept = await this.options.store.sweepStale(this.options.staleAfterMs);
      if (swept.length > 0)
        this.options.logger.info({ swept }, 'stale uncommitted outbound jobs deleted');
      if (flush) {
        this.options.logger.info(
          { jobs: this.schedule.size },
          'outbound queue flushed: every job is due now',
        );
        this.flush();
      } else {
        this.pump();
      }
    } catch (error) {
      this.options.logger.error({ err: errorSummary(error) }, 'outbound queue maintenance failed');
    }
  }
}
