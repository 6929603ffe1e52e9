/**
 * The primary's worker processes (docs/deployment.md "Several processes on one machine"):
 * forks them with Node `cluster`, hands each its setup, restarts one that dies with a
 * bounded back-off, tells every worker how many are ready (their /readyz), gathers every
 * worker's metrics and its own for the one scraped, hands other messages to `onMessage`
 * (primary-shared.ts), and drains them all on stop. A worker that fails
 * while the gateway starts fails the start.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Registry } from 'prom-client';
import type { Logger } from '../config/logger.js';
import { MetricsGatherer } from './cluster-metrics.js';
import type { PrimaryMessage, WorkerMessage } from './roles.js';
import { StartupError } from './startup-errors.js';

/** Back-off between restarts: doubles from the first to the last, reset by a stable worker. */
const RESTART_FIRST_MS = 250;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long is healthy again: the next failure restarts it at once. */
const STABLE_AFTER_MS = 60_000;
/** Longer than the MX's drain (60 s), shorter than the shipped unit's TimeoutStopSec (75 s). */
const STOP_GRACE_MS = 70_000;

interface Entry {
  worker: Worker;
  ready: boolean;
  startedAt: number;
}

export interface SupervisorOptions {
  wanted: number;
  setup(): Extract<PrimaryMessage, { type: 'setup' }>;
  logger: Logger;
  /** The primary's own series, served with the workers' (cluster-metrics.ts). */
  metrics?: Registry;
  /** A worker's message the supervisor does not handle; returns whether it was handled. */
  onMessage?(worker: Worker, message: WorkerMessage): boolean;
}

export class WorkerSupervisor {
  readonly #options: SupervisorOptions;
  readonly #entries = new Map<number, Entry>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #failures = 0;
  #stopping = false;
  /** Settles the first start: every worker ready, or the first failure. */
  #starting: { resolve(ports: Record<string, number>): void; reject(error: Error): void } | null =
    null;
  #ports: Record<string, number> = {};
  /** Gathers every worker's metrics and the primary's when one is scraped. */
  readonly #gatherer: MetricsGatherer;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#gatherer = new MetricsGatherer(options.metrics);
    // Structured clone, not JSON: the config is sent as it was parsed.
    cluster.setupPrimary({ serialization: 'advanced' });
  }

  /** Forks every worker; resolves with their ports once all are ready. */
  start(): Promise<Record<string, number>> {
    return new Promise((resolve, reject) => {
      this.#starting = { resolve, reject };
      for (let i = 0; i < this.#options.wanted; i++) this.#fork();
    });
  }

  /** Workers ready now (what /readyz reports). */
  ready(): number {
    return [...this.#entries.values()].filter((entry) => entry.ready).length;
  }

  /** Every worker re-reads its TLS files (SIGHUP, a renewed certificate). */
  reload(): void {
    for (const { worker } of this.#entries.values()) this.send(worker, { type: 'reload' });
  }

  /** Every worker stops accepting and drains; those still running after the grace are killed. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const exits = [...this.#entries.values()].map(
      ({ worker }) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          this.send(worker, { type: 'stop' });
        }),
    );
    const grace = setTimeout(() => {
      for (const { worker } of this.#entries.values()) {
        this.#options.logger.warn(
          { worker: worker.id, pid: worker.process.pid },
          'worker process still draining after the grace period: killed',
        );
        worker.process.kill('SIGKILL');
      }
    }, graceMs);
    await Promise.all(exits);
    clearTimeout(grace);
  }

  #fork(): void {
    const worker = cluster.fork();
    const entry: Entry = { worker, ready: false, startedAt: Date.now() };
    this.#entries.set(worker.id, entry);
    const { logger } = this.#options;
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'hello') this.send(worker, this.#options.setup());
      else if (message.type === 'ready') {
        entry.ready = true;
        this.#ports = message.ports;
        logger.info({ worker: worker.id, pid: worker.process.pid }, 'worker process ready');
        this.#broadcastStatus();
        if (this.#starting !== null && this.ready() === this.#options.wanted) {
          this.#starting.resolve(this.#ports);
          this.#starting = null;
        }
      } else if (message.type === 'metrics') {
        const workers = [...this.#entries.values()].map((e) => e.worker);
        this.#gatherer
          .gather(workers, (to, request) => this.send(to, request))
          .then(
            (text) => this.send(worker, { type: 'metrics', id: message.id, text }),
            (error: Error) =>
              this.send(worker, { type: 'metrics', id: message.id, error: error.message }),
          );
      } else if (message.type === 'metrics-json') {
        this.#gatherer.received(message);
      } else if (message.type === 'failed') {
        logger.error({ worker: worker.id, err: message.message }, 'worker process failed to start');
        this.#starting?.reject(new StartupError(message.message));
        this.#starting = null;
      } else if (this.#options.onMessage?.(worker, message) !== true) {
        logger.warn({ worker: worker.id, type: message.type }, 'unknown message from a worker');
      }
    });
    worker.on('exit', (code, signal) => this.#exited(entry, code, signal));
  }

  #exited(entry: Entry, code: number | null, signal: string | null): void {
    const { worker } = entry;
    this.#entries.delete(worker.id);
    this.#broadcastStatus();
    if (this.#stopping) return;
    if (this.#starting !== null) {
      this.#starting.reject(
        new StartupError(`worker process ${worker.id} exited while starting (${signal ?? code})`),
      );
      this.#starting = null;
      return;
    }
    if (Date.now() - entry.startedAt >= STABLE_AFTER_MS) this.#failures = 0;
    const delay = Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** this.#failures);
    this.#failures++;
    this.#options.logger.error(
      { worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay },
      'worker process exited: starting another',
    );
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#stopping) this.#fork();
    }, delay);
    this.#timers.add(timer);
  }

  #broadcastStatus(): void {
    const status = { type: 'workers', ready: this.ready(), wanted: this.#options.wanted } as const;
    for (const { worker } of this.#entries.values()) this.send(worker, status);
  }

  /** Sends to every worker but `except`. */
  broadcast(message: PrimaryMessage, except?: Worker): void {
    for (const { worker } of this.#entries.values())
      if (worker !== except) this.send(worker, message);
  }

  /** False when the worker has no channel any more (it is exiting). */
  send(worker: Worker, message: PrimaryMessage): boolean {
    // A worker that is exiting has no channel any more; its 'exit' handles the rest.
    if (!worker.isConnected()) return false;
    worker.send(message, () => undefined);
    return true;
  }
}
