/**
 * The embedded key store: one SQLite file (better-sqlite3, WAL) in the data directory.
 * Every multi-record change is one transaction. Notifications are in-process: every
 * SqliteKeyStore opened on the same file in this process hears the others' events
 * (one gateway process per file is the supported embedded deployment).
 */
import Database from 'better-sqlite3';
import { realpathSync } from 'node:fs';
import type { Scalar } from '../../recrypt/types.js';
import {
  DuplicateError,
  KeyStoreUnavailableError,
  NotFoundError,
  TokenInvalidError,
} from '../errors.js';
import { EventHub } from '../events.js';
import { type GatewayKey, unwrapRecryptionKey } from '../key-wrapping.js';
import type { KeyStore } from '../keystore.js';
import {
  checkOwnerCertificates,
  checkRecordId,
  isRecordId,
  prepareDevice,
  wrapOne,
} from '../prepare.js';
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
import {
  checkDeviceName,
  checkDisplayName,
  checkOpaque,
  checkTtl,
  normaliseAddress,
} from '../validate.js';
import type { ListGroup, ListUpdate, NewList } from '../list-types.js';
import { migrate } from './schema.js';
import { SqliteLists } from './sqlite-lists.js';
import { type DeviceRow, mapSqliteError, toDevice, toUser, type UserRow } from './rows.js';

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
  #closed = false;
  readonly #lists: SqliteLists;

  constructor(options: SqliteKeyStoreOptions) {
    this.#db = new Database(options.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.pragma('synchronous = NORMAL');
    migrate(this.#db);
    this.#key = options.gatewayKey;
    this.#now = options.clock ?? Date.now;
    this.#file = realpathSync(options.path);
    const hubs = hubsByFile.get(this.#file) ?? new Set<EventHub>();
    hubs.add(this.#hub);
    hubsByFile.set(this.#file, hubs);
    this.#lists = new SqliteLists({
      db: () => this.#open(),
      tx: (fn) => this.#tx(fn),
      key: this.#key,
      now: this.#now,
      publish: (event) => this.#publish(event),
    });
  }

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
      this.#requireUser(normal);
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

  async addDevice(input: NewDevice): Promise<Device> {
    const { device, wrappedKeys } = prepareDevice(input, this.#key, this.#now());
    const db = this.#open();
    this.#tx(() => {
      this.#requireUser(device.ownerAddress);
      const clash = db
        .prepare(
          'SELECT name, device_id, revoked FROM devices WHERE owner = ? AND (device_id = ? OR (name = ? AND revoked IS NULL))',
        )
        .all(device.ownerAddress, device.deviceId, device.name) as Array<{ device_id: string }>;
      if (clash.some((r) => r.device_id === device.deviceId)) {
        throw new DuplicateError('device-id', 'a device with this certificate exists');
      }
      if (clash.length > 0)
        throw new DuplicateError('device-name', `device name ${device.name} is taken`);
      db.prepare(
        `INSERT INTO devices (owner, id, name, certificate, device_id, client, credential_hash, created)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        device.ownerAddress,
        device.id,
        device.name,
        device.certificate,
        device.deviceId,
        device.client,
        device.credentialHash,
        device.created,
      );
      const insertKey = db.prepare(
        'INSERT INTO device_keys (owner, device, group_id, wrapped) VALUES (?, ?, ?, ?)',
      );
      for (const [groupId, wrapped] of wrappedKeys)
        insertKey.run(device.ownerAddress, device.id, groupId, wrapped);
    });
    for (const groupId of wrappedKeys.keys()) {
      this.#publish({
        type: 'key-added',
        address: device.ownerAddress,
        id: device.id,
        deviceId: device.deviceId,
        groupId,
      });
    }
    return device;
  }

  #deviceRow(address: string, id: string): DeviceRow | undefined {
    return this.#open()
      .prepare('SELECT * FROM devices WHERE owner = ? AND id = ?')
      .get(address, id) as DeviceRow | undefined;
  }

  async getDevice(address: string, id: string): Promise<Device | null> {
    if (!isRecordId(id)) return null;
    const row = this.#deviceRow(normaliseAddress(address), id);
    return row === undefined ? null : toDevice(row);
  }

  async getDeviceByName(address: string, name: string): Promise<Device | null> {
    const row = this.#open()
      .prepare('SELECT * FROM devices WHERE owner = ? AND name = ? AND revoked IS NULL')
      .get(normaliseAddress(address), checkDeviceName(name)) as DeviceRow | undefined;
    return row === undefined ? null : toDevice(row);
  }

  async listDevices(address: string): Promise<Device[]> {
    const rows = this.#open()
      .prepare('SELECT * FROM devices WHERE owner = ? ORDER BY rowid')
      .all(normaliseAddress(address)) as DeviceRow[];
    return rows.map(toDevice);
  }

  async listActiveDevices(address: string): Promise<Device[]> {
    return (await this.listDevices(address)).filter((d) => d.revoked === null);
  }

  async touchDevice(address: string, id: string, at?: number): Promise<void> {
    if (!isRecordId(id)) return;
    const normal = normaliseAddress(address);
    this.#tx(() =>
      this.#open()
        .prepare('UPDATE devices SET last_seen = ? WHERE owner = ? AND id = ?')
        .run(at ?? this.#now(), normal, id),
    );
  }

  async revokeDevice(address: string, id: string): Promise<Device> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const db = this.#open();
    const now = this.#now();
    const { device, changed } = this.#tx(() => {
      const row = this.#deviceRow(normal, id);
      if (row === undefined) throw new NotFoundError('device', `no device ${id} of ${normal}`);
      if (row.revoked !== null) return { device: toDevice(row), changed: false };
      db.prepare('UPDATE devices SET revoked = ? WHERE owner = ? AND id = ?').run(now, normal, id);
      db.prepare('DELETE FROM device_keys WHERE owner = ? AND device = ?').run(normal, id);
      return { device: { ...toDevice(row), revoked: now }, changed: true };
    });
    if (changed)
      this.#publish({ type: 'device-revoked', address: normal, id, deviceId: device.deviceId });
    return device;
  }

  async putRecryptionKey(address: string, id: string, groupId: string, rk: Scalar): Promise<void> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const db = this.#open();
    const device = this.#tx(() => {
      const row = this.#deviceRow(normal, id);
      if (row === undefined || row.revoked !== null)
        throw new NotFoundError('device', `no active device ${id} of ${normal}`);
      db.prepare(
        `INSERT INTO device_keys (owner, device, group_id, wrapped) VALUES (?, ?, ?, ?)
           ON CONFLICT (owner, device, group_id) DO UPDATE SET wrapped = excluded.wrapped`,
      ).run(normal, id, groupId, wrapOne(this.#key, groupId, row.device_id, rk));
      return row;
    });
    this.#publish({ type: 'key-added', address: normal, id, deviceId: device.device_id, groupId });
  }

  async keysForDevice(address: string, id: string): Promise<Map<string, Scalar>> {
    const keys = new Map<string, Scalar>();
    if (!isRecordId(id)) return keys;
    const rows = this.#open()
      .prepare(
        `SELECT k.group_id, k.wrapped, d.device_id FROM device_keys k
         JOIN devices d ON d.owner = k.owner AND d.id = k.device
         WHERE k.owner = ? AND k.device = ? AND d.revoked IS NULL ORDER BY k.group_id`,
      )
      .all(normaliseAddress(address), id) as Array<{
      group_id: string;
      wrapped: Buffer;
      device_id: string;
    }>;
    for (const row of rows) {
      keys.set(
        row.group_id,
        unwrapRecryptionKey(this.#key, row.wrapped, {
          groupId: row.group_id,
          targetId: row.device_id,
        }),
      );
    }
    return keys;
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
