/**
 * The key directory the gateway's key store calls for (docs/sending.md "Harvested
 * certificates"): SQLite in the data directory beside a SQLite key store, or the key
 * store's Redis (its own connection, the key store's prefix) so that every process sees
 * what any process harvested. The MX, submission and `recrypt keys` all open it here.
 */
import { join } from 'node:path';
import { createRedisClient } from '../keystore/redis/connect.js';
import { DEFAULT_PREFIX } from '../keystore/redis/keys.js';
import type { KeyStoreConfig } from '../keystore/types.js';
import { RedisKeyDirectory } from './redis-keydir.js';
import { SqliteKeyDirectory } from './sqlite-keydir.js';
import type { KeyDirectory } from './types.js';

export const KEY_DIRECTORY_FILE = 'harvested-keys.sqlite';

export async function openKeyDirectory(
  keyStore: KeyStoreConfig,
  dataDir: string,
  onConnectionError?: (error: Error) => void,
): Promise<KeyDirectory> {
  if (keyStore.kind === 'sqlite') return new SqliteKeyDirectory(join(dataDir, KEY_DIRECTORY_FILE));
  const client = createRedisClient(keyStore, 'recrypt-keydir');
  // Without a listener ioredis prints every reconnect failure to the console.
  client.on('error', (error: Error) => onConnectionError?.(error));
  await client.connect();
  return new RedisKeyDirectory({ client, prefix: DEFAULT_PREFIX, ownsClient: true });
}
