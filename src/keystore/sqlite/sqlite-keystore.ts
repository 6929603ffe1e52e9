/**
 * The embedded key store: one SQLite file (better-sqlite3, WAL) in the data directory.
 * The connection, transactions, notifications, users, enrolment, profiles and nonces
 * are here; devices (sqlite-devices.ts) and lists (sqlite-lists.ts) run on this class's
 * connection and transactions. Every multi-record change is one transaction.
 * Notifications are in-process: every SqliteKeyStore opened on the same file in this
 * process hears the others' events (one gateway process per file is the supported
 * embedded deployment).
 */
import Database from 'better-sqlite3';
import { closeSync, openSync, realpathSync } from 'node:fs';
import type { Scalar } from '../../recrypt/types.js';
import {
  DuplicateError,
  KeyStoreUnavailableError,
  NotFoundError,
  TokenInvalidError,
} from '../errors.js';
import { EventHub } from '../events.js';
import type { GatewayKey } from '../key-wrapping.js';
import type { KeyStore } from '../keystore.js';
import { checkOwnerCertificates } from '../prepare.js';
import { hashToken, newEnrolmentToken, tokenHashesEqual } from '../tokens.js';
import type {
  Device,
  KeyStoreEvent,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
  User,
} from '../types.js';
import { checkDisplayName, checkOpaque, checkTtl, normaliseAddress } from '../validate.js';
import type { ListGroup, ListUpdate, NewList } from '../list-types.js';
import { SqliteIntegrityCheck } from './integrity-check.js';
import { migrate } from './schema.js';
import { SqliteDevices } from './sqlite-devices.js';
import { SqliteGroups } from './sqlite-groups.js';
import { SqliteLists } from './sqlite-lists.js';
import { SqlitePairings } from './sqlite-pairing.js';
import type { NewPairingRequest } from '../pairing.js';
import type { GroupRotation } from '../group-rotation.js';
import { mapSqliteError, toDevice, toUser, type DeviceRow, type UserRow } from './rows.js';

// Every store on one file in this process shares a hub set, so events reach them all.
const hubsByFile = new Map<string, Set<EventHub>>();

export interface SqliteKeyStoreOptions {
  path: string;
  gatewayKey: GatewayKey;
  clock?: () => number;
}

export class SqliteKeyStore implements KeyStore {
  readonly kind = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #key: GatewayKey;
  readonly #now: () => number;
  readonly #hub = new EventHub();
  readonly #file: string;
  readonly #integrity: SqliteIntegrityCheck;
  #closed = false;
  readonly #lists: SqliteLists;
  readonly #devices: SqliteDevices;
  readonly #pairings: SqlitePairings;
  readonly #groups: SqliteGroups;

  constructor(options: SqliteKeyStoreOptions) {
    // 0600 from the start (SQLite would make it 0644 less the umask); -wal and -shm
    // take the database file's mode.
    closeSync(openSync(options.path, 'a', 0o600));
    this.#db = new Database(options.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.pragma('synchronous = NORMAL');
    migrate(this.#db);
    this.#key = options.gatewayKey;
    this.#now = options.clock ?? Date.now;
    this.#file = realpathSync(options.path);
    this.#integrity = new SqliteIntegrityCheck(this.#file);
    const hubs = hubsByFile.get(this.#file) ?? new Set<EventHub>();
    hubs.add(this.#hub);
    hubsByFile.set(this.#file, hubs);
    this.#devices = new SqliteDevices({
      db: () => this.#open(),
      tx: (fn) => this.#tx(fn),
      key: this.#key,
      now: this.#now,
      publish: (event) => this.#publish(event),
      requireUser: (address) => this.#requireUser(address),
    });
    this.#lists = new SqliteLists({
      db: () => this.#open(),
      tx: (fn) => this.#tx(fn),
      key: this.#key,
      now: this.#now,
      publish: (event) => this.#publish(event),
    });
    this.#groups = new SqliteGroups({
      db: () => this.#open(),
      tx: (fn) => this.#tx(fn),
      key: this.#key,
      now: this.#now,
      publish: (event) => this.#publish(event),
    });
    this.#pairings = new SqlitePairings({
      db: () => this.#open(),
      tx: (fn) => this.#tx(fn),
      key: this.#key,
      now: this.#now,
      requireUser: (address) => this.#requireUser(address),
    });
  }

  // --- device pairings (sqlite-pairing.ts) ---
  addPairingRequest = (request: NewPairingRequest, maxPending: number) =>
    this.#pairings.addPairingRequest(request, maxPending);
  listPairingRequests = (address: string) => this.#pairings.listPairingRequests(address);
  getPairingRequest = (address: string, id: string) =>
    this.#pairings.getPairingRequest(address, id);
  approvePairingRequest = (address: string, id: string, certificate: Uint8Array) =>
    this.#pairings.approvePairingRequest(address, id, certificate);
  removePairingRequest = (address: string, id: string) =>
    this.#pairings.removePairingRequest(address, id);

  // --- the mailbox's groups and their rotation (sqlite-groups.ts) ---
  rotateGroup = (address: string, rotation: GroupRotation) =>
    this.#groups.rotateGroup(address, rotation);
  formerGroups = (address: string) => this.#groups.formerGroups(address);
  startRotation = (...a: Parameters<SqliteGroups['startRotation']>) =>
    this.#groups.startRotation(...a);
  pendingRotation = (address: string) => this.#groups.pendingRotation(address);
  cancelRotation = (address: string) => this.#groups.cancelRotation(address);
  putRekeyRequest = (...a: Parameters<SqliteGroups['putRekeyRequest']>) =>
    this.#groups.putRekeyRequest(...a);
  rekeyRequests = (address: string) => this.#groups.rekeyRequests(address);
  removeRekeyRequest = (address: string, id: string) =>
    this.#groups.removeRekeyRequest(address, id);

  // --- devices and their recryption keys (sqlite-devices.ts) ---
  addDevice = (device: NewDevice) => this.#devices.addDevice(device);
  getDevice = (address: string, id: string) => this.#devices.getDevice(address, id);
  getDeviceByName = (address: string, name: string) => this.#devices.getDeviceByName(address, name);
  listDevices = (address: string) => this.#devices.listDevices(address);
  listActiveDevices = (address: string) => this.#devices.listActiveDevices(address);
  touchDevice = (address: string, id: string, at?: number) =>
    this.#devices.touchDevice(address, id, at);
  revokeDevice = (address: string, id: string) => this.#devices.revokeDevice(address, id);
  putRecryptionKey = (address: string, id: string, groupId: string, rk: Scalar) =>
    this.#devices.putRecryptionKey(address, id, groupId, rk);
  keysForDevice = (address: string, id: string) => this.#devices.keysForDevice(address, id);

  // --- lists (sqlite-lists.ts) ---
  createList = (list: NewList) => this.#lists.createList(list);
  getList = (address: string) => this.#lists.getList(address);
  listLists = () => this.#lists.listLists();
  updateList = (address: string, update: ListUpdate) => this.#lists.updateList(address, update);
  removeList = (address: string) => this.#lists.removeList(address);
  putListMember = (list: string, member: string, memberGroupId: string, rk: Scalar) =>
    this.#lists.putListMember(list, member, memberGroupId, rk);
  putRemoteListMember = (
    list: string,
    member: string,
    certificate: Uint8Array,
    memberGroupId: string,
    rk: Scalar,
  ) => this.#lists.putRemoteListMember(list, member, certificate, memberGroupId, rk);
  removeListMember = (list: string, member: string) => this.#lists.removeListMember(list, member);
  listMembers = (list: string) => this.#lists.listMembers(list);
  listsOfMember = (member: string) => this.#lists.listsOfMember(member);
  listKeysForMember = (member: string) => this.#lists.listKeysForMember(member);
  rotateList = (list: string, expected: string, next: ListGroup, delta: Scalar) =>
    this.#lists.rotateList(list, expected, next, delta);

  #publish(event: KeyStoreEvent): void {
    for (const hub of hubsByFile.get(this.#file) ?? []) hub.emit(event);
  }

  #open(): Database.Database {
    if (this.#closed) throw new KeyStoreUnavailableError('key store is closed');
    return this.#db;
  }

  /**
   * Runs `fn` as one IMMEDIATE transaction (the write lock is taken up front, so two
   * processes on one file serialise instead of failing at commit) and maps SQLite's
   * errors: lock timeouts and I/O trouble are "unavailable", anything else "corrupt".
   */
  #tx<T>(fn: () => T): T {
    try {
      return this.#open().transaction(fn).immediate();
    } catch (err) {
      throw mapSqliteError(err);
    }
  }

  #userRow(address: string): UserRow | undefined {
    return this.#open().prepare('SELECT * FROM users WHERE address = ?').get(address) as
      UserRow | undefined;
  }

  #requireUser(address: string): UserRow {
    const row = this.#userRow(address);
    if (row === undefined) throw new NotFoundError('user', `no user ${address}`);
    return row;
  }

  async addUser(user: NewUser): Promise<User> {
    const address = normaliseAddress(user.address);
    const displayName = checkDisplayName(user.displayName ?? '');
    const created = this.#now();
    const info = this.#tx(() =>
      this.#open()
        .prepare(
          `INSERT INTO users (address, display_name, enrolment, created) VALUES (?, ?, 'pending', ?)
         ON CONFLICT (address) DO NOTHING`,
        )
        .run(address, displayName, created),
    );
    if (info.changes === 0) throw new DuplicateError('user', `user ${address} exists`);
    return { address, displayName, enrolment: 'pending', owner: null, created };
  }

  async getUser(address: string): Promise<User | null> {
    const row = this.#userRow(normaliseAddress(address));
    return row === undefined ? null : toUser(row);
  }

  async listUsers(): Promise<User[]> {
    const rows = this.#open().prepare('SELECT * FROM users ORDER BY address').all() as UserRow[];
    return rows.map(toUser);
  }

  async removeUser(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    // Devices, keys, token and profile go with the user row (ON DELETE CASCADE).
    const info = this.#tx(() =>
      this.#open().prepare('DELETE FROM users WHERE address = ?').run(normal),
    );
    if (info.changes === 0) throw new NotFoundError('user', `no user ${normal}`);
    this.#publish({ type: 'user-removed', address: normal });
  }

  async createEnrolmentToken(address: string, ttlMs: number): Promise<string> {
    const normal = normaliseAddress(address);
    checkTtl(ttlMs);
    const token = newEnrolmentToken();
    const db = this.#open();
    this.#tx(() => {
      this.#requireUser(normal);
      db.prepare(
        `INSERT INTO enrolment_tokens (address, token_hash, expires, used) VALUES (?, ?, ?, NULL)
         ON CONFLICT (address) DO UPDATE SET token_hash = excluded.token_hash, expires = excluded.expires, used = NULL`,
      ).run(normal, hashToken(token), this.#now() + ttlMs);
    });
    return token;
  }

  async enrol(address: string, token: string, owner: OwnerCertificates): Promise<User> {
    const normal = normaliseAddress(address);
    const certs = checkOwnerCertificates(owner);
    const presented = hashToken(typeof token === 'string' ? token : '');
    const db = this.#open();
    const now = this.#now();
    return this.#tx(() => {
      if (this.#requireUser(normal).enrolment === 'enrolled') throw new TokenInvalidError('used');
      const row = db.prepare('SELECT * FROM enrolment_tokens WHERE address = ?').get(normal) as
        { token_hash: string; expires: number; used: number | null } | undefined;
      if (row === undefined || !tokenHashesEqual(row.token_hash, presented))
        throw new TokenInvalidError('invalid');
      if (row.used !== null) throw new TokenInvalidError('used');
      if (row.expires <= now) throw new TokenInvalidError('expired');
      db.prepare('UPDATE enrolment_tokens SET used = ? WHERE address = ?').run(now, normal);
      this.#writeOwner(normal, certs);
      return toUser(this.#requireUser(normal));
    });
  }

  async resetEnrolment(address: string): Promise<Device[]> {
    const normal = normaliseAddress(address);
    const db = this.#open();
    const now = this.#now();
    const revoked = this.#tx(() => {
      this.#requireUser(normal);
      const rows = db
        .prepare('SELECT * FROM devices WHERE owner = ? AND revoked IS NULL ORDER BY rowid')
        .all(normal) as DeviceRow[];
      db.prepare('UPDATE devices SET revoked = ? WHERE owner = ? AND revoked IS NULL').run(
        now,
        normal,
      );
      db.prepare('DELETE FROM device_keys WHERE owner = ?').run(normal);
      db.prepare('DELETE FROM profiles WHERE address = ?').run(normal);
      db.prepare('DELETE FROM enrolment_tokens WHERE address = ?').run(normal);
      db.prepare('DELETE FROM user_groups WHERE owner = ?').run(normal);
      db.prepare(
        `UPDATE users SET enrolment = 'pending', owner_ca = NULL, group_cert = NULL, group_id = NULL,
           owner_key_spki = NULL WHERE address = ?`,
      ).run(normal);
      return rows.map((row) => ({ ...toDevice(row), revoked: now }));
    });
    for (const device of revoked) {
      this.#publish({
        type: 'device-revoked',
        address: normal,
        id: device.id,
        deviceId: device.deviceId,
      });
    }
    return revoked;
  }

  #writeOwner(address: string, certs: OwnerCertificates): void {
    this.#open()
      .prepare(
        `UPDATE users SET enrolment = 'enrolled', owner_ca = ?, group_cert = ?, group_id = ?, owner_key_spki = ?
         WHERE address = ?`,
      )
      .run(
        certs.ownerCaCertificate,
        certs.groupCertificate,
        certs.groupId,
        certs.ownerKeySpki,
        address,
      );
  }

  async setOwnerCertificates(address: string, owner: OwnerCertificates): Promise<User> {
    const normal = normaliseAddress(address);
    const certs = checkOwnerCertificates(owner);
    return this.#tx(() => {
      const row = this.#requireUser(normal);
      if (row.enrolment !== 'enrolled')
        throw new NotFoundError('user', `user ${normal} is not enrolled`);
      this.#writeOwner(normal, certs);
      return toUser(this.#requireUser(normal));
    });
  }

  async putProfile(address: string, document: string): Promise<void> {
    const normal = normaliseAddress(address);
    checkOpaque(document, 'profile document', 256 * 1024);
    const db = this.#open();
    this.#tx(() => {
      this.#requireUser(normal);
      db.prepare(
        `INSERT INTO profiles (address, document) VALUES (?, ?)
         ON CONFLICT (address) DO UPDATE SET document = excluded.document`,
      ).run(normal, document);
    });
  }

  async getProfile(address: string): Promise<string | null> {
    const row = this.#open()
      .prepare('SELECT document FROM profiles WHERE address = ?')
      .get(normaliseAddress(address)) as { document: string } | undefined;
    return row?.document ?? null;
  }

  async useNonce(scope: string, nonce: string, ttlMs: number): Promise<boolean> {
    const key = `${checkOpaque(scope, 'nonce scope', 512)}\n${checkOpaque(nonce, 'nonce', 256)}`;
    checkTtl(ttlMs);
    const now = this.#now();
    const db = this.#open();
    return this.#tx(() => {
      // Forget expired nonces as we go so the table stays the size of one TTL window.
      db.prepare('DELETE FROM nonces WHERE expires <= ?').run(now);
      return (
        db
          .prepare('INSERT INTO nonces (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING')
          .run(key, now + ttlMs).changes === 1
      );
    });
  }

  subscribe(listener: KeyStoreListener): () => void {
    return this.#hub.subscribe(listener);
  }

  async health(): Promise<void> {
    this.#open().prepare('SELECT 1').get();
    // SELECT 1 reads no page: a damaged or unreadable file must fail readiness too.
    await this.#integrity.run();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#hub.clear();
    const hubs = hubsByFile.get(this.#file);
    hubs?.delete(this.#hub);
    if (hubs?.size === 0) hubsByFile.delete(this.#file);
    this.#db.close();
  }
}
