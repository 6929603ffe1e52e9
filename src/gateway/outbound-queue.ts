/**
 * The outbound queue as the gateway opens it (docs/outbound.md), in one process or in the
 * primary of several (docs/deployment.md, "Several processes on one machine"): jobs for a
 * domain this gateway serves (list copies, reports to its own bounce addresses) go
 * straight to its own MX on loopback rather than through DNS. A worker of several
 * processes only queues: the primary delivers.
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { KeyStore } from '../keystore/index.js';
import {
  createOutboundMetrics,
  openOutboundQueue,
  type OutboundQueueHandle,
} from '../outbound/index.js';
import { loopbackOf, servesDomain } from './addresses.js';
import type { PrimaryLink } from './primary-link.js';
import { queueDirectory, type SharedState } from './shared-state.js';

export interface GatewayQueueOptions {
  config: GatewayConfig;
  dataDir: string;
  shared: SharedState;
  keyStore: KeyStore;
  publicName: string;
  logger: Logger;
  metrics: Registry;
  /** The MX's port, read when a job is sent (known only once the MX listens). */
  mxPort: () => number;
  /**
   * This process is a worker of several: it writes jobs into the store and keeps none;
   * `primary` (SQLite key store) is told of each batch, so the primary sends it at once.
   */
  worker?: { primary?: PrimaryLink };
}

export function openGatewayQueue(options: GatewayQueueOptions): Promise<OutboundQueueHandle> {
  const { config, shared, keyStore } = options;
  const primary = options.worker?.primary;
  return openOutboundQueue({
    dir: queueDirectory(options.dataDir),
    ...(options.worker === undefined ? {} : { deliver: false }),
    // With Redis no nudge is sent; the delivering processes keep to their 5 s poll of the
    // shared schedule (SHARED_QUEUE_POLL_MS). A pub/sub nudge would cost every process a
    // subscriber connection of its own and a publish per batch, and Redis pub/sub drops
    // messages to a subscriber that is reconnecting, so the poll would stay anyway; all
    // to save at most 5 s on mail whose own retries are minutes apart. With SQLite the
    // primary is already one IPC message away (primary-link.ts): the nudge costs nothing.
    ...(primary === undefined ? {} : { onQueued: (jobs) => primary.queued(jobs) }),
    ...(shared.queueStore === undefined ? {} : { store: shared.queueStore }),
    ...(shared.queuePollMs === undefined ? {} : { maintenanceIntervalMs: shared.queuePollMs }),
    config: { ...config.outbound, heloName: config.outbound.heloName ?? options.publicName },
    logger: options.logger,
    metrics: createOutboundMetrics(options.metrics),
    localHop: async (domain) =>
      (await servesDomain(keyStore, config.smtp.localDomains, domain))
        ? { host: loopbackOf(config.smtp.host), port: options.mxPort() }
        : null,
  });
}
