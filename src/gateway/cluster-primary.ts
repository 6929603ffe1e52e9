/**
 * Several gateway processes on one machine (config `processes`, docs/deployment.md
 * "Several processes on one machine"). This primary keeps what must be one: the embedded
 * mail store (IMAP on loopback, LMTP on its Unix socket, which the workers reach like
 * Dovecot), the outbound queue's delivery, ACME and the own certificate's renewal. Its
 * workers (src/gateway/cluster-worker.ts) serve the MX, submission, the IMAP proxy and both
 * HTTPS listeners on the same ports: Node `cluster` has the primary accept each connection
 * and hand it to the workers in turn. What the workers must agree on (revocation, caches,
 * login failure counts, rate limits, the queue, held posts) is the Redis key store's
 * shared state, as across machines; so more than one process needs the Redis key store.
 */
import { availableParallelism, hostname as osHostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { Registry } from 'prom-client';
import { acmeFiles } from '../acme/files.js';
import { openAcmeCertificates } from '../acme/index.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import { ensureTlsMaterial } from '../config/tls.js';
import { PointCache } from '../imap/point-cache.js';
import { loadOrCreateGatewayKey, openKeyStore } from '../keystore/index.js';
import { WorkerSupervisor } from './cluster-supervisor.js';
import { prepareDataDir } from './data-dir.js';
import { startMailStore } from './mail-store.js';
import { loadOrCreateSecretFile } from './secrets.js';
import { openGatewayQueue } from './outbound-queue.js';
import { openSharedState } from './shared-state.js';
import { startGateway } from './start.js';
import { StartupError, causeChain, describeKeyStore } from './startup-errors.js';

/** What `recrypt start` needs of the gateway, one process or several. */
export interface GatewayProcesses {
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

const OWN_CERTIFICATE_CHECK_MS = 24 * 3600 * 1000;

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
  if (config.keyStore.kind === 'sqlite')
    throw new StartupError(
      `processes: ${count} needs a Redis key store (keyStore.kind: redis, redis-sentinel or redis-cluster): the SQLite key ` +
        `store's change events (a revoked device's sessions end, caches drop its points) and ` +
        `the login failure counts and rate limits stay inside one process ` +
        `(docs/deployment.md "Several processes on one machine"); set processes: 1`,
    );
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
    const acme =
      config.acme === undefined
        ? undefined
        : await openAcmeCertificates({
            settings: config.acme,
            dataDir,
            logger: logger.child({ part: 'acme' }),
          });
    const ownTls = () => ensureTlsMaterial(dataDir, undefined, new Date(), publicName);
    if (acme === undefined) await ensureTlsMaterial(dataDir, config.tls, new Date(), publicName);
    await ownTls();
    const gatewayKey = loadOrCreateGatewayKey(dataDir);
    const tokenFile = config.admin.tokenFile;
    loadOrCreateSecretFile(isAbsolute(tokenFile) ? tokenFile : resolve(dataDir, tokenFile));
    PointCache.openOrReset(join(dataDir, 'point-cache.sqlite'), () => undefined)?.close();

    const keyStore = await openKeyStore(config.keyStore, {
      gatewayKey,
      dataDir,
      onConnectionError: (err) => logger.warn({ err: err.message }, 'key store connection problem'),
    }).catch((error: unknown) => {
      throw new StartupError(
        `key store unreachable: ${describeKeyStore(config.keyStore)}: ${causeChain(error)}`,
      );
    });
    stops.push(() => keyStore.close());
    const shared = await openSharedState(config, logger);
    stops.push(() => shared.close());
    // The primary's own series (store, queue) are not served: /metrics is each worker's.
    const metrics = new Registry();
    const store =
      config.mailStore.kind === 'embedded'
        ? await startMailStore(config, dataDir, keyStore, logger.child({ part: 'store' }), metrics)
        : undefined;
    if (store !== undefined) stops.push(() => store.close());

    let mxPort = config.smtp.port;
    const queue = await openGatewayQueue({
      config,
      dataDir,
      shared,
      keyStore,
      publicName,
      logger,
      metrics,
      mxPort: () => mxPort,
    });
    stops.push(() => queue.close());

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
      ...(acme === undefined
        ? {}
        : { acme: undefined, tls: { key: acmeFiles(dataDir).key, cert: acmeFiles(dataDir).cert } }),
    };
    const supervisor = new WorkerSupervisor({
      wanted: count,
      logger,
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
    stops.push(() => supervisor.stop());
    const ports = await supervisor.start();
    mxPort = ports.smtp ?? mxPort;
    queue.start();

    if (acme !== undefined) stops.push(acme.schedule(async () => supervisor.reload()));
    const ownCheck = setInterval(() => {
      ownTls()
        .then((own) => (own.renewed === true ? supervisor.reload() : undefined))
        .catch((error: unknown) =>
          logger.warn({ err: causeChain(error) }, 'TLS: the own certificate check failed'),
        );
    }, OWN_CERTIFICATE_CHECK_MS);
    ownCheck.unref();
    stops.push(async () => clearInterval(ownCheck));

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
