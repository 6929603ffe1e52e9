/**
 * Binds the proxy's DeviceDirectory port to the key store: device login through
 * `authenticateDevice` (constant-time, no early exit, a dummy hash for unknown
 * accounts), the device's recryption keys, and revocation from the store's change
 * notifications. Keys of logged-in devices are kept in one live Map per device that a
 * `key-added` notification refreshes in place, so open sessions pick up a new group.
 * After a notification gap (`resync`) every device seen here is re-checked.
 *
 * Lists (issue 8): a device also reads every list its owner is a member of. For each
 * list group (current and former) the store holds `rk_{list→member}`; composed with the
 * device's own `rk_{member→device}` it gives `g_list·d⁻¹` under the list's groupId (one
 * scalar multiplication here, at fetch time). A revoked device has no own key, so it has
 * no list key either; a `list-changed` notification refreshes the members' devices.
 */
import {
  authenticateDevice,
  KeyStoreUnavailableError,
  toDeviceRecryptKeys,
  type KeyStore,
  type KeyStoreEvent,
} from '../../keystore/index.js';
import { composeKeys } from '../../recrypt/scalar.js';
import type { Scalar } from '../../recrypt/types.js';
import { UnavailableError } from '../errors.js';
import type { AuthenticatedDevice, DeviceDirectory, DeviceRevokedEvent } from '../ports.js';

/**
 * The device's own keys plus, for every list key of its owner whose member group the
 * device holds a key for, the composed key under the list group's id. A list key bound
 * to another member group (a stale one, say after the member re-keyed) composes with
 * nothing and is left out.
 */
export async function deviceKeysWithLists(
  store: KeyStore,
  address: string,
  id: string,
): Promise<Map<string, Scalar>> {
  const keys = await store.keysForDevice(address, id);
  if (keys.size === 0) return keys;
  for (const listKey of await store.listKeysForMember(address)) {
    const own = keys.get(listKey.memberGroupId);
    if (own !== undefined && !keys.has(listKey.groupId)) {
      keys.set(listKey.groupId, composeKeys(listKey.rk, own));
    }
  }
  return keys;
}

export function keyStoreDirectory(store: KeyStore): DeviceDirectory {
  const live = new Map<string, { address: string; id: string; keys: Map<string, Scalar> }>();
  const listeners = new Set<(event: DeviceRevokedEvent) => void>();
  const liveKey = (address: string, id: string): string => `${address}\u0000${id}`;
  const emit = (event: DeviceRevokedEvent): void => {
    for (const listener of listeners) listener(event);
  };

  const refresh = async (address: string, id: string): Promise<void> => {
    const entry = live.get(liveKey(address, id));
    if (entry === undefined) return;
    const keys = await deviceKeysWithLists(store, address, id);
    // A key that went away (the owner left a list): the session's plan cache may still
    // hold plans made with it, so end the device's sessions; its next login starts clean.
    if ([...entry.keys.keys()].some((group) => !keys.has(group))) {
      live.delete(liveKey(address, id));
      emit({ address, deviceId: id });
      return;
    }
    entry.keys.clear();
    for (const [group, rk] of keys) entry.keys.set(group, rk);
  };

  const recheck = async (): Promise<void> => {
    for (const entry of [...live.values()]) {
      const device = await store.getDevice(entry.address, entry.id);
      if (device === null || device.revoked !== null) {
        live.delete(liveKey(entry.address, entry.id));
        emit({ address: entry.address, deviceId: entry.id });
      } else {
        await refresh(entry.address, entry.id);
      }
    }
  };

  store.subscribe((event: KeyStoreEvent) => {
    if (event.type === 'device-revoked') {
      live.delete(liveKey(event.address, event.id));
      emit({ address: event.address, deviceId: event.id });
    } else if (event.type === 'user-removed') {
      for (const [key, entry] of live) if (entry.address === event.address) live.delete(key);
      emit({ address: event.address, deviceId: null });
    } else if (event.type === 'key-added') {
      refresh(event.address, event.id).catch(() => undefined);
    } else if (event.type === 'list-changed') {
      const members = new Set(event.members);
      for (const entry of live.values()) {
        if (members.has(entry.address)) refresh(entry.address, entry.id).catch(() => undefined);
      }
    } else if (event.type === 'resync') {
      recheck().catch(() => undefined);
    }
  });

  return {
    async authenticate(address, password): Promise<AuthenticatedDevice | null> {
      try {
        const device = await authenticateDevice(store, address, password);
        if (device === null) return null;
        const [keys, user] = await Promise.all([
          deviceKeysWithLists(store, device.ownerAddress, device.id),
          store.getUser(device.ownerAddress),
        ]);
        const key = liveKey(device.ownerAddress, device.id);
        const entry = live.get(key) ?? {
          address: device.ownerAddress,
          id: device.id,
          keys: new Map(keys),
        };
        live.set(key, entry);
        store.touchDevice(device.ownerAddress, device.id).catch(() => undefined);
        return {
          address: device.ownerAddress,
          deviceId: device.id,
          keys: toDeviceRecryptKeys(device, entry.keys),
          ...(user?.owner ? { groupCertificate: user.owner.groupCertificate } : {}),
        };
      } catch (error) {
        if (error instanceof KeyStoreUnavailableError) {
          throw new UnavailableError('key store unavailable', { cause: error });
        }
        throw error;
      }
    },
    onDeviceRevoked(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
