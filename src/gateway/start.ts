/**
 * The composition root: one process running the MX, the IMAP proxy, the admin/profile
 * HTTPS server and, unless Dovecot is configured, the embedded mail store — all from one
 * validated config. Every part is started through its own factory and talks to the others
 * only through the narrow ports it declares; this file is where those ports are wired
 * (the TLS material, key store, lists, MX and HTTPS listeners each in a gateway-*.ts).
 */
import { hostname as osHostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../config/logger.js';
import { loadOrCreateGatewayKey, type KeyStore } from '../keystore/index.js';
import { lmtpDelivery } from '../smtp/lmtp-delivery.js';
import { startSubmission, type SubmissionServer } from '../submission/index.js';
import { startHarvesting } from '../keydir/gateway.js';
import { relayedKeyStore } from './cluster-events.js';
import { prepareDataDir } from './data-dir.js';
import { gatewayLists } from './gateway-lists.js';
import { keyStoreUnreachable, openGatewayKeyStore } from './gateway-keystore.js';
import { startGatewayMx } from './gateway-mx.js';
import { startHttpListeners } from './gateway-http.js';
import { openGatewayTls } from './gateway-tls.js';
import { startMailStore } from './mail-store.js';
import { openGatewayQueue } from './outbound-queue.js';
import type { GatewayRole } from './roles.js';
import { startProxy, type RunningProxy } from './proxy.js';
import { openSharedState } from './shared-state.js';
import { loadOrCreateSecretFile } from './secrets.js';
import { StartupError, causeChain } from './startup-errors.js';
import { probeGreeting, type ProbeTarget } from './upstream-probe.js';

export interface RunningGateway {
  ports: {
    smtp: number;
    imap: number;
    imapStarttls: number;
    admin: number;
    operator: number;
    storeImap?: number;
    /** Submission (docs/sending.md), when configured: STARTTLS and implicit TLS. */
    submission?: number;
    submissionTls?: number;
  };
  keyStore: KeyStore;
  metrics: Registry;
  /** Re-reads the TLS files (SIGHUP). */
  reloadTls(): Promise<void>;
  /** Stops accepting, lets transactions and fetches in flight finish, then closes. */
  close(): Promise<void>;
}

/** `role`: one worker of several processes (src/gateway/cluster-worker.ts); absent: the whole gateway. */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger,
  role?: GatewayRole,
): Promise<RunningGateway> {
  const dataDir = config.dataDir;
  const tightened = prepareDataDir(dataDir);
  if (tightened.changed > 0)
    logger.warn(
      { dataDir, changed: tightened.changed },
      'data directory: removed group and other permissions',
    );
  const inData = (path: string) => (isAbsolute(path) ? path : resolve(dataDir, path));
  const publicName = config.hostname ?? osHostname();
  if (config.smtp.postmaster === undefined)
    logger.warn(
      'smtp.postmaster is not set: mail to postmaster@ and abuse@ of the served domains is refused (RFC 5321 §4.5.1 requires postmaster)',
    );

  const tls = await openGatewayTls(config, publicName, logger);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const gatewayKey = loadOrCreateGatewayKey(dataDir);
  let keyStore: KeyStore = await openGatewayKeyStore({ config, gatewayKey, logger, metrics });
  const stops: Array<() => Promise<void>> = [() => keyStore.close()];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  // A worker with the SQLite key store hears the other processes' changes through the
  // primary (cluster-events.ts); Redis carries them itself.
  if (role?.primary !== undefined) {
    const relayed = relayedKeyStore(keyStore, role.primary, (err) =>
      logger.warn({ err: causeChain(err) }, 'a key-store event listener failed'),
    );
    keyStore = relayed.keyStore;
    stops.push(async () => relayed.stop());
  }

  try {
    // The queue, held posts and login failure counts: in Redis when the key store is
    // (every process shares them), else in the data directory and memory.
    const shared = await openSharedState(config, logger, role?.primary).catch((error: unknown) => {
      throw keyStoreUnreachable(config, error);
    });
    stops.push(() => shared.close());
    const store =
      role?.mailStore ??
      (await startMailStore(config, dataDir, keyStore, logger.child({ part: 'store' }), metrics));
    stops.push(() => store.close());
    const mailStoreProbes: ProbeTarget[] = [
      { name: 'mailStore.imap', ...store.imap, protocol: 'imap' },
      { name: 'mailStore.lmtp', ...store.lmtp, protocol: 'lmtp' },
    ];
    if (config.mailStore.kind === 'dovecot') {
      // Fail at start rather than accept mail that cannot be delivered (4xx to every
      // sender) with nothing in the log but a readiness flag.
      for (const target of mailStoreProbes) {
        await probeGreeting(target).catch((error: Error) => {
          throw new StartupError(`mail store unreachable: ${error.message}`);
        });
      }
    }

    // Lists: posts fan out to local mailboxes and, recrypted, through the
    // outbound queue to remote members; moderated posts wait in the shared state.
    const adminToken = loadOrCreateSecretFile(inData(config.admin.tokenFile));
    // Known once the MX listens; the queue starts delivering only after that.
    let mxPort = 0;
    const queue = await openGatewayQueue({
      config,
      dataDir,
      shared,
      keyStore,
      publicName,
      logger,
      // A worker's queue only takes jobs: the primary's series count and deliver them.
      metrics: role === undefined ? metrics : new Registry(),
      mxPort: () => mxPort,
      ...(role === undefined
        ? {}
        : { worker: { ...(role.primary ? { primary: role.primary } : {}) } }),
    });
    stops.push(() => queue.close());
    const storeDelivery = lmtpDelivery(store.lmtp);
    const held = shared.held;
    const started: { proxy?: RunningProxy } = {};
    const { postDelivery, notices, recipientDirectory } = gatewayLists({
      config,
      keyStore,
      gatewayKey,
      delivery: storeDelivery,
      queue,
      held,
      publicName,
      logger,
      onCopyStored: (copy) => started.proxy?.onCopyStored?.(copy),
    });

    // Certificates harvested from signed mail (src/keydir): the MX adds, submission reads;
    // closed after the listeners, once the verifications in flight are done.
    const harvesting = await startHarvesting(config, logger.child({ part: 'harvest' }), metrics);
    stops.push(() => harvesting.close());

    // Every listener stops accepting at once and drains in parallel, so a stop takes the
    // longest drain (the MX's 60 s), not their sum, and no listener takes new work while
    // another drains; the stores they deliver to close after them.
    const listenerStops: Array<() => Promise<void>> = [];
    stops.push(async () => {
      await Promise.all(listenerStops.map((stop) => stop().catch(() => undefined)));
    });

    const {
      mx,
      encryptPool,
      close: closeMx,
    } = await startGatewayMx({
      config,
      publicName,
      tls: tls.public,
      directory: recipientDirectory,
      delivery: storeDelivery,
      harvesting,
      logger: logger.child({ part: 'smtp' }),
      metrics,
      // Recrypted points computed at delivery for the proxy (docs/design.md §4); the
      // proxy starts below, copies stored before it is up are computed at first fetch.
      onCopyStored: (copy) => started.proxy?.onCopyStored?.(copy),
    });
    listenerStops.push(closeMx);
    mxPort = mx.port;
    // A worker only queues: the primary delivers (docs/deployment.md).
    if (role === undefined) queue.start();

    const proxy: RunningProxy = await startProxy({
      config,
      tls: tls.public,
      keyStore,
      upstream: store.imap,
      master: store.master,
      logger: logger.child({ part: 'imap' }),
      metrics,
      ...(shared.loginFailures === undefined ? {} : { loginFailures: shared.loginFailures }),
      // Points at delivery in the MX's worker threads, off the event loop (docs/design.md §4).
      computePoints: (prefix, keys) => encryptPool.computePoints(prefix, keys),
    });
    started.proxy = proxy;
    listenerStops.push(() => proxy.close());

    const submission: SubmissionServer | undefined =
      config.submission === undefined
        ? undefined
        : await startSubmission({
            config: config.submission,
            inData,
            hostname: publicName,
            tls: { key: tls.public.key, cert: tls.public.cert },
            keyStore,
            directory: recipientDirectory,
            delivery: storeDelivery,
            queue,
            store,
            hideSubject: config.smtp.hideSubject,
            logger: logger.child({ part: 'submission' }),
            ...(harvesting.directory === undefined ? {} : { keyDirectory: harvesting.directory }),
            ...(shared.loginFailures === undefined ? {} : { loginFailures: shared.loginFailures }),
            ...(shared.rateLimiter === undefined
              ? {}
              : { rateLimiter: shared.rateLimiter('submission', config.submission.rateLimit) }),
          });
    if (submission !== undefined) listenerStops.push(() => submission.close());

    const { admin, operator: operatorServer } = await startHttpListeners({
      config,
      tls: tls.public,
      operatorTls: tls.operator,
      keyStore,
      adminToken,
      moderation: { held, delivery: postDelivery, notices },
      imapPorts: { port: proxy.port, starttlsPort: proxy.starttlsPort },
      metrics,
      // A worker serves every worker's series (roles.ts), not only its own.
      served: role?.metrics ?? metrics,
      ...(shared.rateLimiter === undefined ? {} : { rateLimiter: shared.rateLimiter }),
      readinessChecks: {
        ...role?.readinessChecks,
        mailStore: () =>
          Promise.all(mailStoreProbes.map((t) => probeGreeting(t))).then(() => undefined),
      },
      inData,
      logger: logger.child({ part: 'admin' }),
      started: (stop) => listenerStops.push(stop),
    });

    logger.info(
      {
        smtp: mx.port,
        imap: proxy.port,
        imapStarttls: proxy.starttlsPort,
        admin: admin.port,
        operator: operatorServer.port,
        submission: submission?.port,
        submissionTls: submission?.tlsPort,
        keyStore: keyStore.kind,
        mailStore: config.mailStore.kind,
      },
      'gateway started',
    );

    const gateway: RunningGateway = {
      ports: {
        smtp: mx.port,
        imap: proxy.port,
        imapStarttls: proxy.starttlsPort,
        admin: admin.port,
        operator: operatorServer.port,
        ...(store.embeddedPorts ?? {}),
        ...(submission === undefined
          ? {}
          : { submission: submission.port, submissionTls: submission.tlsPort }),
      },
      keyStore,
      metrics,
      async reloadTls() {
        await tls.reload();
        admin.setTls(tls.public);
        operatorServer.setTls(tls.operator);
        proxy.setTls(tls.public);
        mx.setTls(tls.public);
        submission?.setTls(tls.public);
        logger.info({ certFile: tls.public.certFile }, 'TLS certificate reloaded');
      },
      close: stopAll,
    };
    // Renewed certificates are hot-reloaded as SIGHUP does (docs/deployment.md "ACME").
    const acmeStop = tls.scheduleAcme(() => gateway.reloadTls());
    if (acmeStop !== undefined) stops.push(acmeStop);
    // A worker's certificate is checked by the primary, which tells every worker to reload.
    if (role !== undefined) return gateway;
    // The gateway's own certificate is re-issued for its key before it expires
    // (src/config/tls.ts), also in a process that runs for years without a SIGHUP.
    stops.push(tls.checkOwnCertificate(() => gateway.reloadTls()));
    return gateway;
  } catch (error) {
    await stopAll();
    throw error;
  }
}
