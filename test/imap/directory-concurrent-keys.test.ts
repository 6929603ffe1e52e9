/**
 * The key-store directory's live keys under concurrent logins (adapters/keystore-directory.ts):
 * sessions of one device opened at the same moment, and a list rotation whose notification
 * comes while a login reads the keys, must all end up with the keys a later `list-changed`
 * notification refreshes. A session holding a Map that no notification reaches recrypts
 * new list posts with none of the new group's keys: the member's client cannot read them.
 * A real SQLite key store (its notifications are delivered in the writing call, so the
 * order of events here is exact); the store's reads are held at chosen points to make
 * the interleavings certain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { UnavailableError } from '../../src/imap/errors.js';
import type { AuthenticatedDevice } from '../../src/imap/ports.js';
import { GatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  rotationDelta,
  type ListGroupKey,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { tempDir } from '../helpers/tmp.js';

const LIST = 'team@lists.test';

type Held = 'keysForDevice' | 'listKeysForMember' | 'getList' | 'getUser';

/** `store` whose reads named in `hold` return only when `hold[name]()` resolves. */
function heldStore(store: KeyStore, hold: Partial<Record<Held, () => Promise<void>>>): KeyStore {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (!Object.hasOwn(hold, prop)) return method;
      return async (...args: unknown[]) => {
        const result: unknown = await method(...args);
        await hold[prop as Held]?.();
        return result;
      };
    },
  });
}

/** The first call waits (`reached` resolves) until `release()`; later calls go on at once. */
function holdFirstCall(): {
  hold: () => Promise<void>;
  reached: Promise<void>;
  release: () => void;
} {
  let reach!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let first = true;
  const hold = async (): Promise<void> => {
    if (!first) return;
    first = false;
    reach();
    await released;
  };
  return { hold, reached, release };
}

/** Each call waits until `n` calls wait, then all go on; `off()` lets every call through. */
function barrier(n: number): { wait: () => Promise<void>; off: () => void } {
  let waiting: (() => void)[] = [];
  let on = true;
  const releaseAll = (): void => {
    for (const resolve of waiting) resolve();
    waiting = [];
  };
  return {
    wait: () =>
      on
        ? new Promise<void>((resolve) => {
            waiting.push(resolve);
            if (waiting.length >= n) releaseAll();
          })
        : Promise.resolve(),
    off: () => {
      on = false;
      releaseAll();
    },
  };
}

describe('the directory keys of concurrent logins and a list rotation (SQLite key store)', () => {
  const dir = tempDir('directory-concurrent-keys-');
  let store: KeyStore;
  let owner: ListMemberUser;
  let alice: ListMemberUser;
  let group: ListGroupKey;
  let rotations = 0;

  beforeAll(async () => {
    store = await openKeyStore(
      { kind: 'sqlite', path: `${dir.path}/keys.sqlite` },
      { gatewayKey: GatewayKey.generate() },
    );
    [owner, alice] = await Promise.all([
      addMember(store, dir.path, 'owner@lists.test', 1),
      addMember(store, dir.path, 'alice@lists.test', 3),
    ]);
    group = await newListGroup(dir.path, owner, LIST, 'g0');
    const list = await store.createList({
      address: LIST,
      owner: owner.address,
      group: { groupId: group.groupId, certificate: group.certDer },
    });
    await blindedJoin(store, list, group, alice);
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    dir.remove();
  });

  /** Rotates the list to a new group (its notification is delivered before this returns). */
  async function rotate(): Promise<ListGroupKey> {
    const next = await newListGroup(dir.path, owner, LIST, `g${++rotations}`);
    await store.rotateList(
      LIST,
      group.groupId,
      { groupId: next.groupId, certificate: next.certDer },
      rotationDelta(next, group),
    );
    group = next;
    return next;
  }

  async function archiveLogin(
    directory: ReturnType<typeof keyStoreDirectory>,
    device: number,
  ): Promise<AuthenticatedDevice> {
    const login = await directory.authenticateArchive!(
      LIST,
      alice.address,
      alice.devices[device]!.password,
    );
    expect(login).not.toBeNull();
    return login!;
  }

  /** Until a new archive login of `device` holds `groupId` (the refresh is done), 5 s at most. */
  async function untilRefreshed(
    directory: ReturnType<typeof keyStoreDirectory>,
    device: number,
    groupId: string,
  ): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!(await archiveLogin(directory, device)).keys.keys.has(groupId)) {
      if (Date.now() > deadline) throw new Error('no refresh reached the directory');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("two archive logins of a device that reads its keys for both at once: a rotation reaches both sessions' keys", async () => {
    const hold = barrier(2);
    const directory = keyStoreDirectory(heldStore(store, { keysForDevice: hold.wait }));
    const sessions = await Promise.all([archiveLogin(directory, 0), archiveLogin(directory, 0)]);
    hold.off();
    const old = group.groupId;
    for (const session of sessions) expect(session.keys.keys.has(old)).toBe(true);
    const next = await rotate();
    await untilRefreshed(directory, 0, next.groupId);
    for (const [i, session] of sessions.entries()) {
      expect(session.keys.keys.has(next.groupId), `session ${i}`).toBe(true);
      expect(session.keys.keys.has(old), `session ${i}`).toBe(true);
    }
  });

  it('two archive logins of a logged-in device that read the list at once: a rotation reaches both', async () => {
    const hold = barrier(2);
    const directory = keyStoreDirectory(heldStore(store, { getList: hold.wait }));
    // The device's own login enters it first; only the archive's keys are read by both.
    expect(await directory.authenticate(alice.address, alice.devices[1]!.password)).not.toBeNull();
    const sessions = await Promise.all([archiveLogin(directory, 1), archiveLogin(directory, 1)]);
    hold.off();
    const next = await rotate();
    await untilRefreshed(directory, 1, next.groupId);
    for (const [i, session] of sessions.entries()) {
      expect(session.keys.keys.has(next.groupId), `session ${i}`).toBe(true);
    }
  });

  it('a rotation notified while a login reads the keys: the login holds the new group', async () => {
    const { hold, reached: readDone, release } = holdFirstCall();
    const directory = keyStoreDirectory(heldStore(store, { listKeysForMember: hold }));
    const login = archiveLogin(directory, 2);
    // The login has read the member's list keys, and not yet made the device live.
    await readDone;
    const next = await rotate();
    release();
    const session = await login;
    expect(session.keys.keys.has(next.groupId)).toBe(true);
    // And a later notification still reaches it.
    const after = await rotate();
    await untilRefreshed(directory, 2, after.groupId);
    expect(session.keys.keys.has(after.groupId)).toBe(true);
  });

  it('a login whose key reads keep being overtaken by changes is refused for now, then goes through', async () => {
    let overtaken = 0;
    const directory = keyStoreDirectory(
      heldStore(store, {
        listKeysForMember: async () => {
          if (overtaken >= 8) return;
          overtaken++;
          await rotate();
        },
      }),
    );
    await expect(directory.authenticate(alice.address, alice.devices[2]!.password)).rejects.toThrow(
      'key store unavailable',
    );
    expect(overtaken).toBe(8);
    // The changes have stopped: the same login now holds the newest group.
    const login = await directory.authenticate(alice.address, alice.devices[2]!.password);
    expect(login!.keys.keys.has(group.groupId)).toBe(true);
  });

  it('two rotations whose refreshes overlap: the later keys stay, and the session is not ended', async () => {
    let armed = false;
    let reached!: () => void;
    const readDone = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const hold = async (): Promise<void> => {
      if (!armed) return;
      armed = false;
      reached();
      await released;
    };
    const directory = keyStoreDirectory(heldStore(store, { listKeysForMember: hold }));
    const revoked: string[] = [];
    directory.onDeviceRevoked((event) => revoked.push(event.deviceId ?? '*'));
    const session = await archiveLogin(directory, 0);
    // The first rotation's refresh reads the keys and is held there; the second's runs whole.
    armed = true;
    await rotate();
    await readDone;
    const second = await rotate();
    await untilRefreshed(directory, 0, second.groupId);
    release();
    // The held refresh goes on (its reads, and then a Map put in place) within this wait.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(session.keys.keys.has(second.groupId)).toBe(true);
    expect(revoked).toEqual([]);
  });

  it("a member who leaves the list while a device logs in: that login is refused for now (its keys would stay the list's), the next one holds no list key", async () => {
    const bob = await addMember(store, dir.path, 'bob@lists.test', 1);
    await blindedJoin(store, (await store.getList(LIST))!, group, bob);
    const { hold, reached: userRead, release } = holdFirstCall();
    const directory = keyStoreDirectory(heldStore(store, { getUser: hold }));
    const dropped = new Promise<void>((resolve) => directory.onDeviceRevoked(() => resolve()));
    const login = directory.authenticate(bob.address, bob.devices[0]!.password);
    // The device is live with the list's key; its session is not registered yet.
    await userRead;
    await store.removeListMember(LIST, bob.address);
    await dropped;
    release();
    const device = (await login)!;
    expect(device.keys.keys.has(group.groupId)).toBe(true);
    await expect(directory.stillActive!(device)).rejects.toBeInstanceOf(UnavailableError);
    const again = (await directory.authenticate(bob.address, bob.devices[0]!.password))!;
    expect(again.keys.keys.has(group.groupId)).toBe(false);
    expect(await directory.stillActive!(again)).toBe(true);
  });
});
