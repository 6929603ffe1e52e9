/**
 * Counts key-store operations that fail with KeyStoreUnavailableError, for both adapters
 * at once: a Proxy around the KeyStore interface rather than a hook in each adapter (the
 * error is already the adapters' common contract, so the wrapper needs nothing else).
 * The label is the method name, a fixed set; arguments (addresses) never reach it.
 */
import { Counter, type Registry } from 'prom-client';
import { KeyStoreUnavailableError, type KeyStore } from '../keystore/index.js';

export interface KeyStoreMetrics {
  unavailable: Counter<'operation'>;
}

export function createKeyStoreMetrics(registry: Registry): KeyStoreMetrics {
  return {
    unavailable: new Counter({
      name: 'recrypt_keystore_unavailable_total',
      help: 'Key store operations that failed because the store was unreachable, by operation',
      labelNames: ['operation'],
      registers: [registry],
    }),
  };
}

/** The same key store, counting KeyStoreUnavailableError per method in `metrics`. */
export function countingUnavailable(keyStore: KeyStore, metrics: KeyStoreMetrics): KeyStore {
  const count = (operation: string, error: unknown): never => {
    if (error instanceof KeyStoreUnavailableError) metrics.unavailable.inc({ operation });
    throw error;
  };
  return new Proxy(keyStore, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]): unknown => {
        let result: unknown;
        try {
          // The adapters keep #private state: call with the real object as `this`.
          result = Reflect.apply(value, target, args);
        } catch (error) {
          return count(property, error);
        }
        return result instanceof Promise
          ? result.catch((error: unknown) => count(property, error))
          : result;
      };
    },
  });
}
