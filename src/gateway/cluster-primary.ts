/**
 * Several gateway processes on one machine (config `processes`, docs/deployment.md
 * "Several processes on one machine"). This primary keeps what must be one: the embedded
 * mail store (IMAP on loopback, LMTP on its Unix socket, which the workers reach like
 * Dovecot), the outbound queue's delivery, ACME and the own certificate's renewal. Its
 * workers (src/gateway/cluster-worker.ts) serve the MX, submission, the IMAP proxy and both
 * HTTPS listeners on the same ports: Node `cluster` has the primary accept each connection
 * and hand it to the workers in turn. What the workers must agree on (revocation, caches,
 * login failure counts, rate limits, the queue, held posts) is the Redis key store's
 * shared state, as across machines; with the SQLite key store the primary holds it: the
 * workers' key-store events go through it to every other process, it keeps the login
 * failure counts and rate limits (primary-shared.ts), and the queue and held posts are
 * files in the data directory, the queue's delivered by the primary. /metrics serves the
 * primary's own series (store, queue) beside the workers' (cluster-metrics.ts).
 */
import { availableParallelism, hostname as osHostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { acmeFiles } from '../acme/files.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import { PointCache } from '../imap/point-cache.js';
import { loadOrCreateGatewayKey } from '../keystore/index.js';
import { relayedKeyStore } from './cluster-events.js';
import { WorkerSupervisor } from './cluster-supervisor.js';
import { openGatewayKeyStore } from './gateway-keystore.js';
import { openGatewayTls } from './gateway-tls.js';
import { PrimaryShared } from './primary-shared.js';
import { prepareDataDir } from './data-dir.js';
import { startMailStore } from './mail-store.js';
import { loadOrCreateSecretFile } from './secrets.js';
import type { OutboundQueueHandle } from '../outbound/index.js';
import { openGatewayQueue } from './outbound-queue.js';
import { SHARED_QUEUE_POLL_MS, openSharedState } from './shared-state.js';
import { startGateway } from './start.js';
import { causeChain } from './startup-errors.js';

/** What `recrypt start` needs of the gateway, one process or several. */
export interface GatewayProcesses {
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

export function processCount(config: GatewayConfig): number {
  return config.processes === 'auto' ? availableParallelism() : config.processes;
}

/**
 * The gateway as configured: this one process, or a primary and `processes` workers
 * (`logger` then names the primary: `recrypt start` makes it so).
 */
export async function startGatewayProcesses(
  config: GatewayConfig,
  logger: Logger,
): Promise<GatewayProcesses> {
  const count = processCount(config);
  if (count === 1) return startGateway(config, logger);
  return startPrimary(config, logger, count);
}

async function startPrimary(
  config: GatewayConfig,
  logger: Logger,
  count: number,
): Promise<GatewayProcesses> {
  const dataDir = config.dataDir;
  const tightened = prepareDataDir(dataDir);
  if (tightened.changed > 0)
    logger.warn(
      { dataDir, changed: tightened.changed },
      'data directory: removed group and other permissions',
    );
  const publicName = config.hostname ?? osHostname();
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    // Everything a worker would otherwise create on first use is made here, once, before
    // any worker starts: certificates, the gateway key, the admin token, the point cache.
    const tls = await openGatewayTls(config, publicName, logger);
    const gatewayKey = loadOrCreateGatewayKey(dataDir);
    const tokenFile = config.admin.tokenFile;
    loadOrCreateSecretFile(isAbsolute(tokenFile) ? tokenFile : resolve(dataDir, tokenFile));
    PointCache.openOrReset(join(dataDir, 'point-cache.sqlite'), () => undefined)?.close();

    // The primary's own series (store, queue, key store, process), served at every
    // worker's /metrics as worker="primary" (cluster-metrics.ts).
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    let keyStore = await openGatewayKeyStore({ config, gatewayKey, logger, metrics });
    stops.push(() => keyStore.close());
    // With SQLite, what Redis would share between the processes the primary holds.
    // The supervisor, made below, knows the workers this sends to.
    const late: { supervisor?: WorkerSupervisor; queue?: OutboundQueueHandle } = {};
    const forWorkers =
      config.keyStore.kind !== 'sqlite'
        ? undefined
        : new PrimaryShared({
            broadcast: (message, except) => late.supervisor?.broadcast(message, except),
            send: (worker, message) => void late.supervisor?.send(worker, message),
            logger,
            // A worker's jobs are sent at once, not at the next look at the directory.
            onJobsQueued: (jobs) => late.queue?.noticeQueued(jobs),
          });
    if (forWorkers !== undefined) {
      const relayed = relayedKeyStore(keyStore, forWorkers.relay, (err) =>
        logger.warn({ err: causeChain(err) }, 'a key-store event listener failed'),
      );
      keyStore = relayed.keyStore;
      stops.push(async () => relayed.stop());
    }
    const shared = await openSharedState(config, logger);
    stops.push(() => shared.close());
    const store =
      config.mailStore.kind === 'embedded'
        ? await startMailStore(config, dataDir, keyStore, logger.child({ part: 'store' }), metrics)
        : undefined;
    if (store !== undefined) stops.push(() => store.close());

    let mxPort = config.smtp.port;
    const queue = await openGatewayQueue({
      config,
      dataDir,
      // The workers queue jobs in the same store (the queue directory with SQLite): the
      // poll finds them this soon, as with Redis; with SQLite each worker also says so
      // (onJobsQueued above), so the poll is only the fallback there.
      shared: { ...shared, queuePollMs: SHARED_QUEUE_POLL_MS },
      keyStore,
      publicName,
      logger,
      metrics,
      mxPort: () => mxPort,
    });
    stops.push(() => queue.close());
    late.queue = queue;

    // Workers read the ACME certificate from its files; the primary renews it. `workers:
    // auto` is shared out: N processes each with a thread per core would hold N times the
    // threads (each with the recryption core, tens of MB) for the same cores.
    const threads: GatewayConfig['workers'] =
      config.workers === 'auto'
        ? Math.max(1, Math.ceil(Math.min(availableParallelism(), 8) / count))
        : config.workers;
    const workerConfig: GatewayConfig = {
      ...config,
      workers: threads,
      ...(config.acme === undefined
        ? {}
        : { acme: undefined, tls: { key: acmeFiles(dataDir).key, cert: acmeFiles(dataDir).cert } }),
    };
    const supervisor = new WorkerSupervisor({
      wanted: count,
      logger,
      metrics,
      ...(forWorkers === undefined
        ? {}
        : { onMessage: (worker, message) => forWorkers.handle(worker, message) }),
      setup: () => ({
        type: 'setup',
        config: workerConfig,
        wanted: count,
        ...(store === undefined
          ? {}
          : {
              mailStore: {
                imap: store.imap,
                lmtp: store.lmtp,
                master: store.master,
                ...(store.embeddedPorts === undefined
                  ? {}
                  : { embeddedPorts: store.embeddedPorts }),
              },
            }),
      }),
    });
    late.supervisor = supervisor;
    stops.push(() => supervisor.stop());
    const ports = await supervisor.start();
    mxPort = ports.smtp ?? mxPort;
    queue.start();

    const acmeStop = tls.scheduleAcme(async () => supervisor.reload());
    if (acmeStop !== undefined) stops.push(acmeStop);
    stops.push(tls.checkOwnCertificate(async () => supervisor.reload()));

    logger.info(
      {
        processes: count,
        ...ports,
        keyStore: config.keyStore.kind,
        mailStore: config.mailStore.kind,
      },
      'gateway started',
    );
    return {
      reloadTls: async () => supervisor.reload(),
      close: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
