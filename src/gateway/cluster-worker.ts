/**
 * One worker process of several (config `processes`, docs/deployment.md "Several
 * processes on one machine"): waits for the primary's setup, runs the gateway's
 * listeners (`startGateway` as a worker: the primary's mail store, a queue that only takes
 * jobs), and follows the primary: reload, stop, and how many workers are ready (/readyz).
 * With the SQLite key store it also reaches the primary for what Redis would share
 * (primary-link.ts: key-store events, login failure counts, rate limits).
 * SIGTERM/SIGINT reach it directly too (systemd signals the whole control group, a
 * terminal the whole process group): it drains once, whichever comes first. It exits when
 * the primary is gone, since the store and the queue's delivery went with it.
 */
import cluster from 'node:cluster';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../config/logger.js';
import { startGateway, type RunningGateway } from './start.js';
import { PrimaryLink } from './primary-link.js';
import type { PrimaryMessage, StoreEndpoints, WorkerMessage } from './roles.js';
import { describeStartupError } from './startup-errors.js';

/** False when there is no channel to the primary (it is gone). */
function send(message: WorkerMessage): boolean {
  if (!process.connected || process.send === undefined) return false;
  process.send(message);
  return true;
}

/** How long a scrape waits for the primary to gather every worker's metrics (it waits 5 s each). */
const METRICS_TIMEOUT_MS = 10_000;

/**
 * What this worker serves at /metrics: every worker's series (each labelled with its
 * number), gathered by the primary, so a scrape sees the whole gateway whichever worker
 * it reaches (docs/deployment.md "Several processes on one machine").
 */
class ClusterMetrics extends Registry {
  #next = 0;
  readonly #pending = new Map<number, (reply: { text?: string; error?: string }) => void>();

  answer(reply: { id: number; text?: string; error?: string }): void {
    this.#pending.get(reply.id)?.(reply);
    this.#pending.delete(reply.id);
  }

  override metrics(): Promise<string> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error('the primary did not gather the metrics in time'));
      }, METRICS_TIMEOUT_MS);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.text !== undefined) resolve(reply.text);
        else reject(new Error(reply.error ?? 'no metrics'));
      });
      send({ type: 'metrics', id });
    });
  }
}

/** Runs this process as a cluster worker until told to stop; never returns normally. */
export async function runClusterWorker(): Promise<void> {
  const id = cluster.worker?.id ?? 0;
  const status = { ready: 0, wanted: 1 };
  let gateway: RunningGateway | undefined;
  // Made once the setup brings the config's log level.
  const log: { logger?: Logger } = {};
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      log.logger?.info({ why }, 'stopping: finishing transactions and fetches in flight');
      await gateway?.close().catch((error: unknown) => {
        log.logger?.error({ err: (error as Error).message }, 'error while stopping');
      });
      log.logger?.info('stopped');
      process.exit(0);
    })());
  const reload = () => {
    gateway?.reloadTls().catch((error: unknown) => {
      log.logger?.error(
        { err: (error as Error).message },
        'TLS reload failed; keeping the old certificate',
      );
    });
  };

  // Answers the primary's requests for this worker's series from now on (its registry
  // once the gateway runs; none until then).
  const clusterMetrics = new ClusterMetrics();
  const primary = new PrimaryLink(send);
  const ownSeries = (id: number) => {
    (gateway?.metrics.getMetricsAsJSON() ?? Promise.resolve([])).then(
      (metrics) => send({ type: 'metrics-json', id, metrics }),
      (error: Error) => send({ type: 'metrics-json', id, error: error.message }),
    );
  };
  const setup = new Promise<Extract<PrimaryMessage, { type: 'setup' }>>((resolve) => {
    process.on('message', (message: PrimaryMessage) => {
      if (message.type === 'setup') resolve(message);
      else if (message.type === 'workers') Object.assign(status, message);
      else if (message.type === 'reload') reload();
      else if (message.type === 'stop') void stop('asked by the primary');
      else if (message.type === 'metrics') clusterMetrics.answer(message);
      else if (message.type === 'metrics-json') ownSeries(message.id);
      else if (message.type === 'keystore-events') primary.received(message.events);
      else if (message.type === 'answer') primary.answer(message);
    });
  });
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', reload);
  process.on('disconnect', () => void stop('the primary is gone'));
  send({ type: 'hello' });

  const { config, mailStore, wanted } = await setup;
  status.wanted = wanted;
  const logger = createLogger(config.logLevel).child({ process: `worker-${id}` });
  log.logger = logger;
  try {
    gateway = await startGateway(config, logger, {
      kind: 'worker',
      metrics: clusterMetrics,
      // Redis shares these between the processes itself.
      ...(config.keyStore.kind === 'sqlite' ? { primary } : {}),
      ...(mailStore === undefined ? {} : { mailStore: withoutClose(mailStore) }),
      readinessChecks: {
        workers: async () => {
          if (status.ready < status.wanted)
            throw new Error(`${status.ready} of ${status.wanted} worker processes ready`);
        },
      },
    });
  } catch (error) {
    send({ type: 'failed', message: describeStartupError(error, config) });
    process.exit(1);
  }
  // Each worker's series carry its number (they are served together, ClusterMetrics).
  gateway.metrics.setDefaultLabels({ worker: String(id) });
  send({ type: 'ready', ports: definedPorts(gateway.ports) });
  await new Promise<never>(() => undefined);
}

function withoutClose(endpoints: StoreEndpoints) {
  return { ...endpoints, close: async () => undefined };
}

function definedPorts(ports: RunningGateway['ports']): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, port] of Object.entries(ports)) if (port !== undefined) out[name] = port;
  return out;
}
