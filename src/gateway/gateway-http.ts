/**
 * The gateway's two HTTPS listeners (docs/admin-api.md): the public one owners and senders
 * reach (enrolment, profiles, the owner API; rate-limited per client), and the operator's,
 * on loopback unless configured otherwise (the admin-token routes, /readyz, /metrics),
 * which always serves the gateway's own certificate.
 */
import type { Registry } from 'prom-client';
import { createAdminMetrics } from '../admin/metrics.js';
import type { RateLimiter, RateLimitSettings } from '../admin/rate-limit.js';
import { REMOTE_JOIN_LIMIT } from '../admin/list-remote.js';
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../admin/server.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { TlsMaterial } from '../config/tls.js';
import type { KeyStore } from '../keystore/index.js';
import { withProxyProtocol } from '../net/proxy-listener.js';
import { publicHost } from './addresses.js';
import { readSecretFile } from './secrets.js';

export interface HttpListeners {
  admin: AdminServer;
  operator: AdminServer;
}

export async function startHttpListeners(options: {
  config: GatewayConfig;
  tls: TlsMaterial;
  operatorTls: TlsMaterial;
  keyStore: KeyStore;
  adminToken: string;
  moderation: NonNullable<AdminServerOptions['moderation']>;
  imapPorts: { port: number; starttlsPort: number };
  /** This process's registry: its request counts. */
  metrics: Registry;
  /** What /metrics serves (a worker: every worker's series, roles.ts). */
  served: Registry;
  rateLimiter?(scope: string, settings: RateLimitSettings): RateLimiter;
  readinessChecks: Record<string, () => Promise<void>>;
  inData(path: string): string;
  logger: Logger;
  /** Called with each listener's stop as soon as it listens. */
  started(stop: () => Promise<void>): void;
}): Promise<HttpListeners> {
  const { config, tls, rateLimiter } = options;
  const httpShared = {
    tls: { key: tls.key, cert: tls.cert },
    keyStore: options.keyStore,
    adminToken: options.adminToken,
    moderation: options.moderation,
    imapSettings: {
      host: publicHost(config.imap.host),
      port: options.imapPorts.port,
      starttlsPort: options.imapPorts.starttlsPort,
    },
    metrics: options.served,
    requestMetrics: createAdminMetrics(options.metrics),
    logger: options.logger,
  };
  const admin: AdminServer = await startAdminServer({
    ...httpShared,
    host: config.admin.host,
    port: config.admin.port,
    audiences: ['public'],
    rateLimit: config.admin.rateLimit,
    ...(rateLimiter === undefined
      ? {}
      : {
          rateLimiter: rateLimiter('admin', config.admin.rateLimit),
          remoteJoinLimiter: rateLimiter('remote-join', REMOTE_JOIN_LIMIT),
        }),
    ...withProxyProtocol(config.admin.proxyProtocol),
  });
  options.started(() => admin.close());
  const operator: AdminServer = await startAdminServer({
    ...httpShared,
    tls: { key: options.operatorTls.key, cert: options.operatorTls.cert },
    host: config.operator.host,
    port: config.operator.port,
    audiences: ['operator'],
    ...withProxyProtocol(config.operator.proxyProtocol),
    ...(config.operator.metricsTokenFile !== undefined
      ? {
          metricsToken: readSecretFile(
            options.inData(config.operator.metricsTokenFile),
            'operator.metricsTokenFile',
          ),
        }
      : {}),
    readinessChecks: options.readinessChecks,
  });
  options.started(() => operator.close());
  return { admin, operator };
}
