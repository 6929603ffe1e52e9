/**
 * Keeps the point cache (../point-cache.ts) in step with the key store: every change
 * notification that can change what a device's plans hold deletes the entries it
 * touches. Revocation and user removal also reach the cache through the proxy's
 * revocation fan-out (server.ts); here they are handled again so that entries go even
 * when no session of the device is open. A key added (a rotation re-keys a device, a
 * list joined) and a list's change (membership, rotation) drop the devices' entries;
 * after a gap in the notifications everything goes. Entries made with other keys are
 * never served anyway (the stored fingerprint no longer matches); this keeps the file
 * from holding what can no longer be read.
 */
import { normaliseAddress, type KeyStore, type KeyStoreEvent } from '../../keystore/index.js';
import type { PointCache } from '../point-cache.js';

/** Subscribes `cache` to `store`'s notifications; returns the unsubscribe function. */
export function invalidateOnKeyStoreEvents(store: KeyStore, cache: PointCache): () => void {
  // Listeners must not throw: an address the store sent is valid, but stay safe.
  const owner = (address: string): string => {
    try {
      return normaliseAddress(address).toLowerCase();
    } catch {
      return address.trim().toLowerCase();
    }
  };
  return store.subscribe((event: KeyStoreEvent) => {
    switch (event.type) {
      case 'device-revoked':
      case 'key-added':
        cache.forgetDevice(owner(event.address), event.id);
        break;
      case 'user-removed':
        cache.forgetOwner(owner(event.address));
        break;
      case 'list-changed':
        for (const member of event.members) cache.forgetOwner(owner(member));
        cache.forgetStoreUser(owner(event.list));
        break;
      case 'resync':
        cache.clear();
        break;
    }
  });
}
