/**
 * The key store as one gateway process opens it: the configured adapter, counting the
 * operations that fail as unavailable (keystore-metrics.ts), checked reachable before any
 * listener starts; a store that cannot be reached fails the start with one line naming it.
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import { openKeyStore, type GatewayKey, type KeyStore } from '../keystore/index.js';
import { countingUnavailable, createKeyStoreMetrics } from './keystore-metrics.js';
import { StartupError, causeChain, describeKeyStore } from './startup-errors.js';

/** The start's error when the key store (or, with Redis, the shared state) cannot be reached. */
export function keyStoreUnreachable(config: GatewayConfig, error: unknown): StartupError {
  return new StartupError(
    `key store unreachable: ${describeKeyStore(config.keyStore)}: ${causeChain(error)}`,
  );
}

export async function openGatewayKeyStore(options: {
  config: GatewayConfig;
  gatewayKey: GatewayKey;
  logger: Logger;
  metrics: Registry;
}): Promise<KeyStore> {
  const { config, logger } = options;
  let keyStore: KeyStore;
  try {
    keyStore = countingUnavailable(
      await openKeyStore(config.keyStore, {
        gatewayKey: options.gatewayKey,
        dataDir: config.dataDir,
        onConnectionError: (err) =>
          logger.warn({ err: err.message }, 'key store connection problem'),
      }),
      createKeyStoreMetrics(options.metrics),
    );
  } catch (error) {
    throw keyStoreUnreachable(config, error);
  }
  try {
    await keyStore.health();
  } catch (error) {
    await keyStore.close().catch(() => undefined);
    throw keyStoreUnreachable(config, error);
  }
  return keyStore;
}
