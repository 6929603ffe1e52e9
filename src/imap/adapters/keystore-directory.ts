/**
 * Binds the proxy's DeviceDirectory port to the key store: device login through
 * `authenticateDevice` (constant-time, no early exit, a dummy hash for unknown
 * accounts), the device's recryption keys, and revocation from the store's change
 * notifications. Keys of logged-in devices are kept in one live Map per device that a
 * `key-added` notification refreshes in place, so open sessions pick up a new group.
 * After a notification gap (`resync`) every device seen here is re-checked.
 *
 * Lists: a device also reads every list its owner is a member of. For each
 * list group (current and former) the store holds `rk_{list→member}`; composed with the
 * device's own `rk_{member→device}` it gives `g_list·d⁻¹` under the list's groupId (one
 * scalar multiplication here, at fetch time). A revoked device has no own key, so it has
 * no list key either; a `list-changed` notification refreshes the members' devices.
 *
 * List archives: a member's device may open the list's own mailbox. It logs in
 * with its own credential; the session's keys are the composed keys of that list's groups
 * only, a live Map refreshed with the device's (a rotation adds the new group's key). A
 * removal takes the list's keys from the device, which ends all its sessions, archive
 * sessions included.
 *
 * Concurrent logins of one device share its entry (and its archive Maps): a second read of
 * the keys that finishes later is dropped, not put in place of the first, whose Map open
 * sessions hold and notifications refresh. A read of keys that a notification for the
 * owner overtook is done again: the refresh that notification started did not see a Map
 * that was not live yet. A refresh reads the same way, so of two overlapping refreshes
 * the one that finishes last puts the newest keys. A login whose entry such a refresh
 * dropped before its session was registered is answered unavailable (try again).
 */
import {
  authenticateDevice,
  KeyStoreUnavailableError,
  normaliseAddress,
  toDeviceRecryptKeys,
  type Device,
  type KeyStore,
  type KeyStoreEvent,
  type MailingList,
} from '../../keystore/index.js';
import { composeKeys } from '../../recrypt/scalar.js';
import type { Scalar } from '../../recrypt/types.js';
import { UnavailableError } from '../errors.js';
import type { AuthenticatedDevice, DeviceDirectory, DeviceRevokedEvent } from '../ports.js';

/** Reads of a device's keys overtaken by a change before one is taken as settled. */
const READ_ATTEMPTS = 8;

interface LiveDevice {
  address: string;
  id: string;
  keys: Map<string, Scalar>;
  /** Per list archive the device has opened: the keys of that list's groups (live). */
  archives: Map<string, Map<string, Scalar>>;
}

/**
 * The device's own keys plus, for every list key of its owner whose member group the
 * device holds a key for, the composed key under the list group's id. A list key bound
 * to another member group (a stale one, say after the member re-keyed) composes with
 * nothing and is left out.
 */
export async function deviceKeysWithLists(
  store: Pick<KeyStore, 'keysForDevice' | 'listKeysForMember'>,
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
  const live = new Map<string, LiveDevice>();
  const listeners = new Set<(event: DeviceRevokedEvent) => void>();
  const liveKey = (address: string, id: string): string => `${address}\u0000${id}`;
  const emit = (event: DeviceRevokedEvent): void => {
    for (const listener of listeners) listener(event);
  };
  /** Owners with a key read in progress → the key notifications seen for them meanwhile. */
  const reading = new Map<string, { readers: number; changes: number }>();
  const changed = (address: string): void => {
    const entry = reading.get(address);
    if (entry !== undefined) entry.changes++;
  };
  /**
   * `read()` for `address`'s keys, again until no key notification for it came meanwhile;
   * at most READ_ATTEMPTS times, then unavailable for now (a login is answered
   * `NO [UNAVAILABLE]`), so that a stream of changes cannot keep a read going forever.
   */
  const readSettled = async <T>(address: string, read: () => Promise<T>): Promise<T> => {
    const entry = reading.get(address) ?? { readers: 0, changes: 0 };
    reading.set(address, entry);
    entry.readers++;
    try {
      for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
        const seen = entry.changes;
        const value = await read();
        if (entry.changes === seen) return value;
      }
      throw new KeyStoreUnavailableError(`keys of ${address} changing: try again`);
    } finally {
      if (--entry.readers === 0) reading.delete(address);
    }
  };

  const refresh = async (address: string, id: string): Promise<void> => {
    const entry = live.get(liveKey(address, id));
    if (entry === undefined) return;
    // Everything read before anything changes, and read again when another notification
    // for the owner comes meanwhile: the refresh it starts may finish first, and older
    // keys put after it would lack its group (or look like a key that went away).
    const { keys, archives } = await readSettled(address, async () => {
      const keys = await deviceKeysWithLists(store, address, id);
      const archives = new Map<string, Map<string, Scalar>>();
      for (const list of entry.archives.keys()) {
        archives.set(list, await listGroupKeys(store, list, keys));
      }
      return { keys, archives };
    });
    if (live.get(liveKey(address, id)) !== entry) return;
    // A key that went away (the owner left a list): the session's plan cache may still
    // hold plans made with it, so end the device's sessions; its next login starts clean.
    if ([...entry.keys.keys()].some((group) => !keys.has(group))) {
      live.delete(liveKey(address, id));
      emit({ address, deviceId: id });
      return;
    }
    replaceKeys(entry.keys, keys);
    for (const [list, archiveKeys] of entry.archives) {
      const read = archives.get(list);
      if (read !== undefined) replaceKeys(archiveKeys, read);
    }
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
      changed(event.address);
      refresh(event.address, event.id).catch(() => undefined);
    } else if (event.type === 'list-changed') {
      const members = new Set(event.members);
      for (const member of members) changed(member);
      for (const entry of live.values()) {
        if (members.has(entry.address)) refresh(entry.address, entry.id).catch(() => undefined);
      }
    } else if (event.type === 'resync') {
      for (const address of reading.keys()) changed(address);
      recheck().catch(() => undefined);
    }
  });

  /** The device behind `password`, entered in `live`; null if none. */
  const login = async (
    address: string,
    password: string,
  ): Promise<{ device: Device; entry: LiveDevice } | null> => {
    const device = await authenticateDevice(store, address, password);
    if (device === null) return null;
    const key = liveKey(device.ownerAddress, device.id);
    let entry = live.get(key);
    if (entry === undefined) {
      const keys = await readSettled(device.ownerAddress, () =>
        deviceKeysWithLists(store, device.ownerAddress, device.id),
      );
      // A concurrent login of this device may have entered it meanwhile: share its entry.
      entry = live.get(key);
      if (entry === undefined) {
        entry = { address: device.ownerAddress, id: device.id, keys, archives: new Map() };
        live.set(key, entry);
      }
    }
    store.touchDevice(device.ownerAddress, device.id).catch(() => undefined);
    return { device, entry };
  };

  return {
    authenticate: (address, password) =>
      unavailableAsImap(async (): Promise<AuthenticatedDevice | null> => {
        const found = await login(address, password);
        if (found === null) return null;
        const { device, entry } = found;
        const user = await store.getUser(device.ownerAddress);
        return {
          address: device.ownerAddress,
          deviceId: device.id,
          keys: toDeviceRecryptKeys(device, entry.keys),
          ...(user?.owner ? { groupCertificate: user.owner.groupCertificate } : {}),
        };
      }),
    authenticateArchive: (listAddress, member, password) =>
      unavailableAsImap(async (): Promise<AuthenticatedDevice | null> => {
        // The credential first, whatever the list: a stranger learns nothing about lists.
        const found = await login(member, password);
        if (found === null) return null;
        const { device, entry } = found;
        const list = await getListOrNull(store, listAddress);
        if (list === null) return null;
        if (!(await store.listsOfMember(device.ownerAddress)).includes(list.address)) return null;
        let keys = entry.archives.get(list.address);
        if (keys === undefined) {
          const read = await readSettled(device.ownerAddress, () =>
            listGroupKeys(store, list.address, entry.keys),
          );
          // As for the device's entry: a concurrent archive login's Map, if there is one.
          keys = entry.archives.get(list.address);
          if (keys === undefined) {
            keys = read;
            entry.archives.set(list.address, keys);
          }
        }
        return {
          address: device.ownerAddress,
          deviceId: device.id,
          keys: toDeviceRecryptKeys(device, keys),
          // The store user the MX delivers the archive copy to: the normalised list address.
          archive: { list: list.address, mailbox: list.address },
        };
      }),
    accountOf(name) {
      try {
        return normaliseAddress(name);
      } catch {
        return name.trim().toLowerCase();
      }
    },
    stillActive: (device) =>
      unavailableAsImap(async () => {
        const current = await store.getDevice(device.address, device.deviceId);
        if (current === null || current.revoked !== null) {
          // The login read the device before its revocation: forget what it cached.
          live.delete(liveKey(device.address, device.deviceId));
          return false;
        }
        // A refresh that found a key gone (the owner left a list) dropped the entry this
        // login's keys came from before the session was registered for its event: no
        // notification reaches that Map again, and it still holds the key that went away.
        const entry = live.get(liveKey(device.address, device.deviceId));
        const keys = device.keys.keys;
        if (entry === undefined || (entry.keys !== keys && !holdsArchive(entry, keys))) {
          throw new UnavailableError('keys changed during the login: try again');
        }
        return true;
      }),
    onDeviceRevoked(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

function holdsArchive(entry: LiveDevice, keys: ReadonlyMap<string, Scalar>): boolean {
  for (const archive of entry.archives.values()) if (archive === keys) return true;
  return false;
}

function replaceKeys(target: Map<string, Scalar>, source: ReadonlyMap<string, Scalar>): void {
  target.clear();
  for (const [group, rk] of source) target.set(group, rk);
}

/** The keys in `keys` for the groups (current and former) of `listAddress`. */
async function listGroupKeys(
  store: KeyStore,
  listAddress: string,
  keys: ReadonlyMap<string, Scalar>,
): Promise<Map<string, Scalar>> {
  const list = await store.getList(listAddress);
  const out = new Map<string, Scalar>();
  for (const group of list === null ? [] : [list.group, ...list.formerGroups]) {
    const rk = keys.get(group.groupId);
    if (rk !== undefined) out.set(group.groupId, rk);
  }
  return out;
}

/** A malformed address is no list (the login fails like any other). */
async function getListOrNull(store: KeyStore, address: string): Promise<MailingList | null> {
  try {
    return await store.getList(address);
  } catch (error) {
    if ((error as { code?: string }).code === 'invalid-argument') return null;
    throw error;
  }
}

async function unavailableAsImap<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof KeyStoreUnavailableError) {
      throw new UnavailableError('key store unavailable', { cause: error });
    }
    throw error;
  }
}
