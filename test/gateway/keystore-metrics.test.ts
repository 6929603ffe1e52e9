/**
 * recrypt_keystore_unavailable_total: the gateway's wrapper around the KeyStore counts
 * KeyStoreUnavailableError per operation and nothing else, and otherwise behaves as the
 * store it wraps. A closed SQLite store is a real unavailable store (it throws that error).
 */
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { countingUnavailable, createKeyStoreMetrics } from '../../src/gateway/keystore-metrics.js';
import {
  KeyStoreUnavailableError,
  NotFoundError,
  loadOrCreateGatewayKey,
  openKeyStore,
} from '../../src/keystore/index.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-keystore-metrics-');
afterAll(() => dir.remove());

describe('key store unavailable counter', () => {
  it('counts only KeyStoreUnavailableError, by operation, and passes everything else through', async () => {
    const registry = new Registry();
    const metrics = createKeyStoreMetrics(registry);
    const inner = await openKeyStore(
      { kind: 'sqlite', path: 'keystore.sqlite' },
      { gatewayKey: loadOrCreateGatewayKey(dir.path), dataDir: dir.path },
    );
    const keyStore = countingUnavailable(inner, metrics);
    const count = async (operation: string) =>
      (await metrics.unavailable.get()).values.find((v) => v.labels.operation === operation)
        ?.value ?? 0;

    expect(keyStore.kind).toBe('sqlite');
    const added = await keyStore.addUser({ address: 'alice@example.org' });
    expect(added.address).toBe('alice@example.org');
    expect(await keyStore.getUser('alice@example.org')).toMatchObject({
      address: 'alice@example.org',
    });
    await expect(keyStore.removeUser('bob@example.org')).rejects.toBeInstanceOf(NotFoundError);
    expect((await metrics.unavailable.get()).values).toEqual([]);

    await keyStore.close();
    await expect(keyStore.getUser('alice@example.org')).rejects.toBeInstanceOf(
      KeyStoreUnavailableError,
    );
    await expect(keyStore.getUser('alice@example.org')).rejects.toBeInstanceOf(
      KeyStoreUnavailableError,
    );
    await expect(keyStore.health()).rejects.toBeInstanceOf(KeyStoreUnavailableError);
    expect(await count('getUser')).toBe(2);
    expect(await count('health')).toBe(1);
    expect(await registry.metrics()).not.toContain('example.org');
  });
});
