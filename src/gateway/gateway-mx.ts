/**
 * The MX as the gateway runs it (docs/configuration.md "smtp"): every `smtp.*` setting
 * mapped onto the MX's options, encryption on arrival in worker threads (config
 * `workers`), delivery to the mail store, harvesting of signed mail's certificates.
 */
import { availableParallelism } from 'node:os';
import type { Registry } from 'prom-client';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { TlsMaterial } from '../config/tls.js';
import { mailAuthResolver } from '../dns/plain.js';
import type { Harvesting } from '../keydir/gateway.js';
import { withProxyProtocol } from '../net/proxy-listener.js';
import { recryptEncryptor } from '../smtp/adapters/index.js';
import { EncryptPool, pooledEncryptor } from '../smtp/adapters/encrypt-pool.js';
import { startMxServer, type MxServer, type MxServerOptions } from '../smtp/mx-server.js';

export interface GatewayMx {
  mx: MxServer;
  /** The encryption threads, also computing points for the proxy (docs/design.md §4). */
  encryptPool: EncryptPool;
  /** Stops the MX (draining) and then its threads. */
  close(): Promise<void>;
}

export async function startGatewayMx(options: {
  config: GatewayConfig;
  publicName: string;
  tls: TlsMaterial;
  directory: MxServerOptions['directory'];
  delivery: MxServerOptions['delivery'];
  harvesting: Harvesting;
  logger: Logger;
  metrics: Registry;
  onCopyStored: NonNullable<MxServerOptions['onCopyStored']>;
}): Promise<GatewayMx> {
  const { config, tls, harvesting } = options;
  // Encryption on arrival in worker threads (config `workers`).
  const encryptPool = new EncryptPool({
    // Started as copies need them; each thread holds the recryption core (tens of MB).
    size: config.workers === 'auto' ? Math.min(availableParallelism(), 8) : config.workers,
    wrap: { hideSubject: config.smtp.hideSubject },
  });
  encryptPool.warm();
  // The pool's threads would keep a process whose MX could not start (a port in use)
  // from exiting: it is closed with the MX, or here when the MX fails to start.
  const mx: MxServer = await startMxServer({
    hostname: options.publicName,
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
    directory: options.directory,
    encryptor: pooledEncryptor(
      recryptEncryptor({ hideSubject: config.smtp.hideSubject }),
      encryptPool,
    ),
    delivery: options.delivery,
    logger: options.logger,
    metrics: options.metrics,
    ...withProxyProtocol(config.smtp.proxyProtocol),
    ...(harvesting.onStored === undefined ? {} : { onStored: harvesting.onStored }),
    onCopyStored: options.onCopyStored,
  }).catch(async (error: unknown) => {
    await encryptPool.close();
    throw error;
  });
  return {
    mx,
    encryptPool,
    async close() {
      await mx.close();
      await encryptPool.close();
    },
  };
}
