/**
 * The outbound queue as the gateway opens it (docs/outbound.md), in one process or in the
 * primary of several (docs/deployment.md, "Several processes on one machine"): jobs for a
 * domain this gateway serves (list copies, reports to its own bounce addresses) go
 * straight to its own MX on loopback rather than through DNS.
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
}

export function openGatewayQueue(options: GatewayQueueOptions): Promise<OutboundQueueHandle> {
  const { config, shared, keyStore } = options;
  return openOutboundQueue({
    dir: queueDirectory(options.dataDir),
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
