/**
 * `openKeyStore(config, options)`: the one way the gateway gets a KeyStore. Chooses the
 * adapter from the `keyStore` section of the gateway config; the gateway key comes from
 * the data directory (`loadOrCreateGatewayKey`), never from the store. Each adapter is
 * loaded when chosen: a command that imports the key store for its errors or credential
 * hashing does not load better-sqlite3 and ioredis.
 */
import { isAbsolute, resolve } from 'node:path';
import type { GatewayKey } from './key-wrapping.js';
import type { KeyStore } from './keystore.js';
import type { RedisTimeouts } from './redis/connect.js';
import type { KeyStoreConfig } from './types.js';

export interface OpenKeyStoreOptions {
  gatewayKey: GatewayKey;
  /** Resolves a relative SQLite path (the gateway passes its dataDir). */
  dataDir?: string;
  /** Redis key prefix (default 'recrypt:'). */
  prefix?: string;
  clock?: () => number;
  timeouts?: RedisTimeouts;
  onConnectionError?: (err: Error) => void;
}

/** Throws KeyStoreUnavailableError when Redis cannot be reached now. */
export async function openKeyStore(
  config: KeyStoreConfig,
  options: OpenKeyStoreOptions,
): Promise<KeyStore> {
  if (config.kind === 'sqlite') {
    const path =
      isAbsolute(config.path) || options.dataDir === undefined
        ? config.path
        : resolve(options.dataDir, config.path);
    const { SqliteKeyStore } = await import('./sqlite/sqlite-keystore.js');
    return new SqliteKeyStore({
      path,
      gatewayKey: options.gatewayKey,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }
  const { RedisKeyStore } = await import('./redis/redis-keystore.js');
  return RedisKeyStore.open({
    config,
    gatewayKey: options.gatewayKey,
    ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    ...(options.onConnectionError ? { onConnectionError: options.onConnectionError } : {}),
  });
}
