import { describe, expect, it } from 'vitest';
import {
  GatewayKey,
  type KeyStoreConfig,
  KeyStoreUnavailableError,
  openKeyStore,
} from '../../src/keystore/index.js';
import { freePort } from '../helpers/ports.js';

describe('opening a Redis key store that is not there', () => {
  it('fails with KeyStoreUnavailableError for every Redis form', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const configs: KeyStoreConfig[] = [
      { kind: 'redis', url: `redis://127.0.0.1:${ports[0]}` },
      { kind: 'redis-cluster', nodes: ports.map((port) => ({ host: '127.0.0.1', port })) },
      {
        kind: 'redis-sentinel',
        sentinels: [{ host: '127.0.0.1', port: ports[1]! }],
        name: 'recrypt',
      },
    ];
    for (const config of configs) {
      const error = await openKeyStore(config, { gatewayKey: GatewayKey.generate() }).then(
        (store) => store.close().then(() => null),
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(KeyStoreUnavailableError);
    }
  });
});
