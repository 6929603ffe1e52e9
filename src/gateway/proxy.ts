import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { TlsMaterial } from '../config/tls.js';
import { keyStoreDirectory } from '../imap/adapters/keystore-directory.js';
import { invalidateOnKeyStoreEvents } from '../imap/adapters/point-cache-events.js';
import { pointsAtDelivery, type ComputePoints } from '../imap/adapters/points-at-delivery.js';
import { PointCache } from '../imap/point-cache.js';
import { createImapProxyMetrics, startImapProxy } from '../imap/index.js';
import type { SharedLoginFailures } from '../imap/throttle.js';
import type { KeyStore } from '../keystore/index.js';
import { withProxyProtocol } from '../net/proxy-listener.js';

export interface RunningProxy {
  port: number;
  starttlsPort: number;
  setTls(tls: TlsMaterial): void;
  /** For the MX's `onCopyStored`: recrypted points computed at delivery; absent without a point cache. */
  onCopyStored?(copy: { owners: string[]; prefix: Uint8Array }): void;
  close(): Promise<void>;
}

/** The recrypting IMAP proxy in front of the configured mail store. */
export async function startProxy(options: {
  config: GatewayConfig;
  tls: TlsMaterial;
  keyStore: KeyStore;
  upstream: { host: string; port: number; tls: boolean };
  master: { user: string; password: string };
  logger: Logger;
  metrics: Registry;
  /** Login failure counts every gateway process shares (Redis key store). */
  loginFailures?: SharedLoginFailures;
  /** Computes the points at delivery off the event loop (the MX's worker threads). */
  computePoints?: ComputePoints;
}): Promise<RunningProxy> {
  const { config } = options;
  // Recrypted points kept per message and device (docs/design.md §4): a local cache of
  // public data; each gateway instance keeps its own, the key store's notifications
  // invalidate all of them.
  const pointCache = PointCache.openOrReset(join(config.dataDir, 'point-cache.sqlite'), (error) =>
    options.logger.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'point cache unusable: made anew (recryption works without it, only slower)',
    ),
  );
  if (pointCache !== null) {
    new Gauge({
      name: 'imap_proxy_point_cache_lookups',
      help: 'Point cache results since start (hits, misses, corrupt, stale, errors)',
      labelNames: ['result'],
      registers: [options.metrics],
      collect() {
        for (const [result, count] of Object.entries(pointCache.stats)) this.set({ result }, count);
      },
    });
    new Gauge({
      name: 'imap_proxy_delivered_points',
      help: 'Points (and plan_*: whole BODY[] plans) computed at delivery since start (hits, misses, stored, skipped, errors)',
      labelNames: ['result'],
      registers: [options.metrics],
      collect() {
        for (const [result, count] of Object.entries(pointCache.delivered.stats))
          this.set({ result }, count);
        for (const [result, count] of Object.entries(pointCache.delivered.plans.stats))
          this.set({ result: `plan_${result}` }, count);
      },
    });
  }
  const atDelivery =
    pointCache === null
      ? undefined
      : pointsAtDelivery({
          keyStore: options.keyStore,
          points: pointCache.delivered,
          ...(options.computePoints === undefined ? {} : { compute: options.computePoints }),
        });
  const stopInvalidating =
    pointCache === null
      ? () => undefined
      : invalidateOnKeyStoreEvents(options.keyStore, pointCache);
  const proxy = await startImapProxy({
    ...(pointCache === null ? {} : { pointCache }),
    host: config.imap.host,
    port: config.imap.port,
    starttlsPort: config.imap.starttlsPort,
    tls: { key: options.tls.key, cert: options.tls.cert },
    upstream: options.upstream,
    master: options.master,
    directory: keyStoreDirectory(options.keyStore),
    logger: options.logger,
    metrics: createImapProxyMetrics(options.metrics),
    allowPlaintextOnLoopback: config.imap.allowPlaintextOnLoopback,
    limits: {
      maxConnections: config.imap.maxConnections,
      maxConnectionsPerIp: config.imap.maxConnectionsPerIp,
      maxSessionsPerUserIp: config.imap.maxSessionsPerUserIp,
    },
    throttle: {
      maxConcurrentPerIp: config.imap.maxLoginsInProgressPerIp,
      ...(options.loginFailures === undefined
        ? {}
        : {
            shared: options.loginFailures,
            onSharedError: (error: unknown) =>
              options.logger.warn(
                { err: (error as Error).message },
                // Held by the primary (SQLite): the login is refused instead (throttle.ts).
                options.loginFailures?.failClosed === true
                  ? 'shared login failure counts unavailable; login refused for now'
                  : 'shared login failure counts unavailable; local counts apply',
              ),
          }),
    },
    loginTimeoutMs: config.imap.loginTimeoutSeconds * 1000,
    ...withProxyProtocol(config.imap.proxyProtocol),
    // The same limit as the MX's: the store is sized for its encrypted copy (start.ts), so
    // an APPEND the proxy admits always fits, and one that would not is refused before
    // its literal is read.
    appendLimit: config.smtp.maxMessageBytes,
  }).catch((error: unknown) => {
    stopInvalidating();
    pointCache?.close();
    throw error;
  });
  return {
    port: proxy.ports.tls ?? config.imap.port,
    starttlsPort: proxy.ports.starttls ?? config.imap.starttlsPort,
    setTls: (tls) => proxy.setTls({ key: tls.key, cert: tls.cert }),
    ...(atDelivery === undefined ? {} : { onCopyStored: (copy) => atDelivery.onCopyStored(copy) }),
    close: async () => {
      await proxy.close();
      stopInvalidating();
      pointCache?.close();
    },
  };
}
