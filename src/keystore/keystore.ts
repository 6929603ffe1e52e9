/**
 * The one narrow interface every part of the gateway uses to reach users, devices,
 * recryption keys, profiles and replay nonces. Two adapters implement it (SQLite,
 * Redis single/Sentinel/Cluster) and one contract suite (test/keystore/contract.ts)
 * holds them to the same behaviour.
 *
 * Conventions:
 * - Addresses are normalised by the store (`normaliseAddress`); callers may pass them raw.
 * - Lookups return `null` for an absent record; changes to an absent record throw
 *   `NotFoundError`.
 * - Every method may throw `KeyStoreUnavailableError` (quickly: bounded retries).
 * - Every multi-record change is atomic: it happens entirely or not at all, and
 *   the notification it causes is published only if it happened.
 * - Recryption keys are stored wrapped under the gateway key (key-wrapping.ts); this
 *   interface hands out and takes plain scalars.
 */
import type { Scalar } from '../recrypt/types.js';
import type { GroupStore } from './group-rotation.js';
import type { ListStore } from './list-types.js';
import type { PairingStore } from './pairing.js';
import type { RekeyStore } from './rekey.js';
import type {
  Device,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
  User,
} from './types.js';

/**
 * Lists, device pairings and a mailbox's group history are part of the same store: see
 * list-types.ts, pairing.ts, group-rotation.ts and rekey.ts.
 */
export interface KeyStore extends ListStore, PairingStore, GroupStore, RekeyStore {
  /** Which adapter ('sqlite' | 'redis'), for logs and health output. */
  readonly kind: 'sqlite' | 'redis';

  // --- users -------------------------------------------------------------------------
  /** Creates a pending user. `DuplicateError('user')` if the address exists. */
  addUser(user: NewUser): Promise<User>;
  /** null when unknown (the MX's RCPT check). */
  getUser(address: string): Promise<User | null>;
  /** Every user, sorted by address. */
  listUsers(): Promise<User[]>;
  /** Deletes the user with its devices, keys, token and profile, atomically. */
  removeUser(address: string): Promise<void>;

  // --- enrolment ---------------------------------------------------------------------
  /**
   * A fresh one-time token for the user (replacing any earlier one); only its hash is
   * stored. Returned once: the operator hands it to the owner.
   */
  createEnrolmentToken(address: string, ttlMs: number): Promise<string>;
  /**
   * Consumes the token and stores the owner's certificates in one atomic change; the
   * user becomes 'enrolled'. Of concurrent calls with the same token exactly one wins.
   * `TokenInvalidError` ('invalid' | 'expired' | 'used'; 'used' also for a user already
   * enrolled, whatever the token: only `resetEnrolment` opens an account again);
   * `NotFoundError` for no user.
   */
  enrol(address: string, token: string, owner: OwnerCertificates): Promise<User>;
  /**
   * The operator's explicit reset, in one atomic change: the user is 'pending' again
   * without owner certificates, every active device is revoked (its keys deleted), the
   * published profile and any token are deleted; then `device-revoked` is notified for
   * each. Returns the devices it revoked. `NotFoundError` for no user.
   */
  resetEnrolment(address: string): Promise<Device[]>;
  /** Replaces the owner's certificates of an enrolled user (an owner-signed re-key). */
  setOwnerCertificates(address: string, owner: OwnerCertificates): Promise<User>;

  // --- devices -----------------------------------------------------------------------
  /**
   * Stores the device and its recryption keys in one atomic change. `DuplicateError`
   * ('device-name' among active devices, 'device-id' among all the owner's devices);
   * `NotFoundError` if the owner does not exist.
   */
  addDevice(device: NewDevice): Promise<Device>;
  getDevice(address: string, id: string): Promise<Device | null>;
  /** The active device with this name, or null. */
  getDeviceByName(address: string, name: string): Promise<Device | null>;
  /** All the owner's devices, revoked ones included, in the order they were added. */
  listDevices(address: string): Promise<Device[]>;
  /** The devices that may log in (not revoked), in the order they were added. */
  listActiveDevices(address: string): Promise<Device[]>;
  /** Records a successful login; silently ignores a device that is gone. */
  touchDevice(address: string, id: string, at?: number): Promise<void>;
  /**
   * Marks the device revoked and deletes its recryption keys in one atomic change,
   * then notifies `device-revoked`. Revoking a revoked device returns it unchanged.
   */
  revokeDevice(address: string, id: string): Promise<Device>;

  // --- recryption keys ---------------------------------------------------------------
  /** Adds (or replaces) one key of an active device, e.g. for a new group of the owner. */
  putRecryptionKey(address: string, id: string, groupId: string, rk: Scalar): Promise<void>;
  /** The device's keys, group RecipientId hex → rk; empty for a revoked or unknown device. */
  keysForDevice(address: string, id: string): Promise<Map<string, Scalar>>;

  // --- published profiles ------------------------------------------------------------
  /** Stores the owner-signed profile document (opaque here; profiles/ verifies it). */
  putProfile(address: string, document: string): Promise<void>;
  getProfile(address: string): Promise<string | null>;

  // --- replay protection -------------------------------------------------------------
  /**
   * Records `nonce` within `scope` (e.g. the owner's address) for `ttlMs`. true the
   * first time, false while it is remembered: a replayed signed request.
   */
  useNonce(scope: string, nonce: string, ttlMs: number): Promise<boolean>;

  // --- plumbing ----------------------------------------------------------------------
  /**
   * Change notifications from every process sharing the store. Returns a function that
   * unsubscribes. Listeners run synchronously and must not throw.
   */
  subscribe(listener: KeyStoreListener): () => void;
  /** Resolves when the store answers; `KeyStoreUnavailableError` otherwise. */
  health(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The device part of KeyStore: each adapter keeps it in its own file
 * (redis/redis-devices.ts, sqlite/sqlite-devices.ts) and delegates to it.
 */
export type DeviceStore = Pick<
  KeyStore,
  | 'addDevice'
  | 'getDevice'
  | 'getDeviceByName'
  | 'listDevices'
  | 'listActiveDevices'
  | 'touchDevice'
  | 'revokeDevice'
  | 'putRecryptionKey'
  | 'keysForDevice'
>;
