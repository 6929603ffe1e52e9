/** The contract's shared harness type, per-suite context and helpers. */
import { expect } from 'vitest';
import type { GatewayKey, KeyStore, KeyStoreEvent, NewDevice } from '../../src/keystore/index.js';

export interface ContractHarness {
  /** A new store instance on the same backing store (another "gateway process"). */
  open(gatewayKey: GatewayKey): Promise<KeyStore>;
  /** Every byte the backing store holds (files, or every value of every key). */
  rawContents(): Promise<Buffer[]>;
  /** Makes the next write of a recryption key for `address` fail inside the change. */
  injectKeyWriteFault(address: string): Promise<() => Promise<void>>;
  /** Takes the backend away and brings it back (absent for SQLite: nothing to lose). */
  outage?: { stop(): Promise<void>; start(): Promise<void> };
  dispose(): Promise<void>;
}

export async function expectError<E extends Error>(
  promise: Promise<unknown>,
  type: new (...a: never[]) => E,
): Promise<E> {
  const error = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(type);
  return error as E;
}

/** Resolves with the first event matching `match`, or fails after `ms`. */
export function nextEvent(
  store: KeyStore,
  match: (e: KeyStoreEvent) => boolean,
  ms = 5000,
): Promise<KeyStoreEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no matching event arrived'));
    }, ms);
    const off = store.subscribe((e) => {
      if (match(e)) {
        clearTimeout(timer);
        off();
        resolve(e);
      }
    });
  });
}

/** Filled by the suite's beforeAll; sections read it in their own beforeAll. */
export interface ContractContext {
  harness: ContractHarness;
  gatewayKey: GatewayKey;
  /** Two instances on one backing store: two gateway processes. */
  store: KeyStore;
  other: KeyStore;
  credentialHash: string;
  groupId: string;
  newDevice(address: string, name: string, extra?: Partial<NewDevice>): NewDevice;
  /** A fresh user, enrolled with the fixture certificates; its normalised address. */
  enrolledUser(): Promise<string>;
}
