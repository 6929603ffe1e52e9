/**
 * The composition root: one process running the MX, the IMAP proxy, the admin/profile
 * HTTPS server and, unless Dovecot is configured, the embedded mail store — all from one
 * validated config. Every part is started through its own factory and talks to the others
 * only through the narrow ports it declares; this file is where those ports are wired.
 */
import { availableParallelism, hostname as osHostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { openAcmeCertificates } from '../acme/index.js';
import { createAdminMetrics } from '../admin/metrics.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import type { GatewayConfig } from '../config/schema.js';
import { ensureTlsMaterial, type TlsMaterial } from '../config/tls.js';
import type { Logger } from '../config/logger.js';
import { loadOrCreateGatewayKey, openKeyStore, type KeyStore } from '../keystore/index.js';
import { noticeSender } from '../lists/notices.js';
import { listPostDelivery } from '../lists/post-delivery.js';
import { keyStoreDirectory, recryptEncryptor } from '../smtp/adapters/index.js';
import { EncryptPool, pooledEncryptor } from '../smtp/adapters/encrypt-pool.js';
import { lmtpDelivery } from '../smtp/lmtp-delivery.js';
import { startMxServer, type MxServer } from '../smtp/mx-server.js';
import { startSubmission, type SubmissionServer } from '../submission/index.js';
import { publicHost } from './addresses.js';
import { prepareDataDir } from './data-dir.js';
import { startMailStore } from './mail-store.js';
import type { GatewayRole } from './roles.js';
import { startProxy, type RunningProxy } from './proxy.js';
import { countingUnavailable, createKeyStoreMetrics } from './keystore-metrics.js';
import { mailAuthResolver } from '../dns/plain.js';
import { openGatewayQueue } from './outbound-queue.js';
import { openSharedState } from './shared-state.js';
import { relayedKeyStore } from './cluster-events.js';
import { loadOrCreateSecretFile, readSecretFile } from './secrets.js';
import { StartupError, causeChain, describeKeyStore } from './startup-errors.js';
import { probeGreeting, type ProbeTarget } from './upstream-probe.js';
import { withProxyProtocol } from '../net/proxy-listener.js';
import { startHarvesting } from '../keydir/gateway.js';

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

/** How often the gateway's own certificate is checked for its expiry. */
const OWN_CERTIFICATE_CHECK_MS = 24 * 3600 * 1000;

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

  // With acme, the first certificate is obtained here, before any listener starts.
  const acmeCertificates =
    config.acme === undefined
      ? undefined
      : await openAcmeCertificates({
          settings: config.acme,
          dataDir,
          logger: logger.child({ part: 'acme' }),
        });
  let tls: TlsMaterial =
    acmeCertificates?.material() ??
    (await ensureTlsMaterial(dataDir, config.tls, new Date(), publicName));
  if (tls.generated)
    logger.info({ certFile: tls.certFile }, 'generated a self-signed TLS certificate');
  if (tls.renewed === true)
    logger.info(
      { certFile: tls.certFile },
      're-issued the self-signed TLS certificate for its key',
    );
  // The operator listener is reached by address from this machine (the operator's
  // commands, health checks), not by a public name: it always serves the gateway's own
  // self-signed certificate in <dataDir>/tls, which those tools trust by its key, also
  // when the public listeners serve a CA-issued one (tls files, acme).
  const ownTls = (): Promise<TlsMaterial> =>
    ensureTlsMaterial(dataDir, undefined, new Date(), publicName);
  let operatorTls: TlsMaterial =
    config.tls === undefined && config.acme === undefined ? tls : await ownTls();

  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const gatewayKey = loadOrCreateGatewayKey(dataDir);
  const unreachable = (error: unknown) =>
    new StartupError(
      `key store unreachable: ${describeKeyStore(config.keyStore)}: ${causeChain(error)}`,
    );
  let keyStore: KeyStore;
  try {
    keyStore = countingUnavailable(
      await openKeyStore(config.keyStore, {
        gatewayKey,
        dataDir,
        onConnectionError: (err) =>
          logger.warn({ err: err.message }, 'key store connection problem'),
      }),
      createKeyStoreMetrics(metrics),
    );
  } catch (error) {
    throw unreachable(error);
  }
  try {
    await keyStore.health();
  } catch (error) {
    await keyStore.close().catch(() => undefined);
    throw unreachable(error);
  }
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
      throw unreachable(error);
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
    });
    stops.push(() => queue.close());
    const storeDelivery = lmtpDelivery(store.lmtp);
    const listLogger = logger.child({ part: 'lists' });
    const held = shared.held;
    const postDelivery = listPostDelivery({
      keyStore,
      delivery: storeDelivery,
      queue,
      // Each post is also kept in the list address's own mailbox, its archive, which
      // members open through the proxy. The embedded store makes that mailbox itself;
      // Dovecot's userdb must know list addresses (the shipped static one does).
      archive: true,
      logger: listLogger,
      // The members' points at delivery, as for the MX's own copies (docs/design.md §4).
      onCopyStored: (copy) => started.proxy?.onCopyStored?.(copy),
    });
    const notices = noticeSender({
      keyStore,
      delivery: storeDelivery,
      queue,
      hostname: config.outbound.heloName ?? publicName,
      logger: listLogger,
    });

    // Users and lists of this gateway: the MX's recipients, and submission's local ones.
    const recipientDirectory = keyStoreDirectory({
      keyStore,
      localDomains: config.smtp.localDomains,
      aliases: config.smtp.aliases,
      ...(config.smtp.postmaster !== undefined ? { postmaster: config.smtp.postmaster } : {}),
      lists: {
        delivery: postDelivery,
        held,
        notices,
        // Not the admin token: rotating that must not void pending confirmations.
        secret: gatewayKey.deriveSecret('list-unsubscribe-confirmation'),
      },
      logger: listLogger,
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

    // Encryption on arrival in worker threads (config `workers`).
    const encryptPool = new EncryptPool({
      // Started as copies need them; each thread holds the recryption core (tens of MB).
      size: config.workers === 'auto' ? Math.min(availableParallelism(), 8) : config.workers,
      wrap: { hideSubject: config.smtp.hideSubject },
    });
    encryptPool.warm();
    const started: { proxy?: RunningProxy } = {};
    // The pool's threads would keep a process whose MX could not start (a port in use)
    // from exiting: it is closed with the MX, or here when the MX fails to start.
    const mx: MxServer = await startMxServer({
      hostname: publicName,
      host: config.smtp.host,
      port: config.smtp.port,
      tls: { key: tls.key, cert: tls.cert },
      banner: config.smtp.banner,
      maxSize: config.smtp.maxMessageBytes,
      maxClients: config.smtp.maxClients,
      maxClientsPerIp: config.smtp.maxClientsPerIp,
      maxRecipients: config.smtp.maxRecipients,
      commandTimeoutMs: config.smtp.commandTimeout,
      socketTimeoutMs: config.smtp.dataTimeout,
      headerLimits: {
        maxHeaderBytes: config.smtp.maxHeaderBytes,
        maxHeaderLines: config.smtp.maxHeaderLines,
        maxHeaderFieldBytes: config.smtp.maxHeaderFieldBytes,
      },
      maxDkimSignatures: config.smtp.maxDkimSignatures,
      authTimeoutMs: config.smtp.authTimeout,
      ...(config.smtp.resolver === undefined
        ? {}
        : { dnsResolver: mailAuthResolver(config.smtp.resolver) }),
      localDomains: config.smtp.localDomains,
      pendingRecipientGraceMs: config.smtp.pendingRecipientGrace,
      directory: recipientDirectory,
      encryptor: pooledEncryptor(
        recryptEncryptor({ hideSubject: config.smtp.hideSubject }),
        encryptPool,
      ),
      delivery: storeDelivery,
      logger: logger.child({ part: 'smtp' }),
      metrics,
      ...withProxyProtocol(config.smtp.proxyProtocol),
      ...(harvesting.onStored === undefined ? {} : { onStored: harvesting.onStored }),
      // Recrypted points computed at delivery for the proxy (docs/design.md §4); the
      // proxy starts below, copies stored before it is up are computed at first fetch.
      onCopyStored: (copy) => started.proxy?.onCopyStored?.(copy),
    }).catch(async (error: unknown) => {
      await encryptPool.close();
      throw error;
    });
    listenerStops.push(async () => {
      await mx.close();
      await encryptPool.close();
    });
    mxPort = mx.port;
    // A worker only queues: the primary delivers (docs/deployment.md).
    if (role === undefined) queue.start();

    const proxy: RunningProxy = await startProxy({
      config,
      tls,
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
            tls: { key: tls.key, cert: tls.cert },
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

    // Two listeners (docs/admin-api.md): the public one owners and senders reach, and
    // the operator's, on loopback unless configured otherwise.
    const httpShared = {
      tls: { key: tls.key, cert: tls.cert },
      keyStore,
      adminToken,
      moderation: { held, delivery: postDelivery, notices },
      imapSettings: {
        host: publicHost(config.imap.host),
        port: proxy.port,
        starttlsPort: proxy.starttlsPort,
      },
      // A worker serves every worker's series (roles.ts), not only its own.
      metrics: role?.metrics ?? metrics,
      requestMetrics: createAdminMetrics(metrics),
      logger: logger.child({ part: 'admin' }),
    };
    const admin: AdminServer = await startAdminServer({
      ...httpShared,
      host: config.admin.host,
      port: config.admin.port,
      audiences: ['public'],
      rateLimit: config.admin.rateLimit,
      ...(shared.rateLimiter === undefined
        ? {}
        : { rateLimiter: shared.rateLimiter('admin', config.admin.rateLimit) }),
      ...withProxyProtocol(config.admin.proxyProtocol),
    });
    listenerStops.push(() => admin.close());
    const operatorServer: AdminServer = await startAdminServer({
      ...httpShared,
      tls: { key: operatorTls.key, cert: operatorTls.cert },
      host: config.operator.host,
      port: config.operator.port,
      audiences: ['operator'],
      ...withProxyProtocol(config.operator.proxyProtocol),
      ...(config.operator.metricsTokenFile !== undefined
        ? {
            metricsToken: readSecretFile(
              inData(config.operator.metricsTokenFile),
              'operator.metricsTokenFile',
            ),
          }
        : {}),
      readinessChecks: {
        ...role?.readinessChecks,
        mailStore: () =>
          Promise.all(mailStoreProbes.map((t) => probeGreeting(t))).then(() => undefined),
      },
    });
    listenerStops.push(() => operatorServer.close());

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
        tls =
          acmeCertificates?.material() ??
          (await ensureTlsMaterial(dataDir, config.tls, new Date(), publicName));
        operatorTls = config.tls === undefined && config.acme === undefined ? tls : await ownTls();
        admin.setTls(tls);
        operatorServer.setTls(operatorTls);
        proxy.setTls(tls);
        mx.setTls(tls);
        submission?.setTls(tls);
        logger.info({ certFile: tls.certFile }, 'TLS certificate reloaded');
      },
      close: stopAll,
    };
    // Renewed certificates are hot-reloaded as SIGHUP does (docs/deployment.md "ACME").
    if (acmeCertificates !== undefined)
      stops.push(acmeCertificates.schedule(() => gateway.reloadTls()));
    // A worker's certificate is checked by the primary, which tells every worker to reload.
    if (role !== undefined) return gateway;
    // The gateway's own certificate is re-issued for its key before it expires
    // (src/config/tls.ts), also in a process that runs for years without a SIGHUP.
    const ownCheck = setInterval(() => {
      ownTls()
        .then((own) => (own.renewed === true ? gateway.reloadTls() : undefined))
        .catch((error: unknown) =>
          logger.warn({ err: causeChain(error) }, 'TLS: the own certificate check failed'),
        );
    }, OWN_CERTIFICATE_CHECK_MS);
    ownCheck.unref();
    stops.push(async () => clearInterval(ownCheck));
    return gateway;
  } catch (error) {
    await stopAll();
    throw error;
  }
}
