/**
 * The SQLite adapter's devices and their recryption keys: tables `devices` and
 * `device_keys` (schema.ts; both go with the user row, ON DELETE CASCADE). Each change
 * is one IMMEDIATE transaction run by the owning SqliteKeyStore, and its notification is
 * published only after that transaction committed.
 */
import type Database from 'better-sqlite3';
import type { Scalar } from '../../recrypt/types.js';
import { DuplicateError, NotFoundError } from '../errors.js';
import { type GatewayKey, unwrapRecryptionKey } from '../key-wrapping.js';
import type { DeviceStore } from '../keystore.js';
import { checkRecordId, isRecordId, prepareDevice, wrapOne } from '../prepare.js';
import type { Device, KeyStoreEvent, NewDevice } from '../types.js';
import { checkDeviceName, normaliseAddress } from '../validate.js';
import { type DeviceRow, toDevice } from './rows.js';

export interface SqliteDeviceDeps {
  db: () => Database.Database;
  tx: <T>(fn: () => T) => T;
  key: GatewayKey;
  now: () => number;
  publish: (event: KeyStoreEvent) => void;
  /** Throws NotFoundError('user') inside a transaction when the owner is gone. */
  requireUser: (address: string) => void;
}

export class SqliteDevices implements DeviceStore {
  constructor(private readonly deps: SqliteDeviceDeps) {}

  async addDevice(input: NewDevice): Promise<Device> {
    const { device, wrappedKeys } = prepareDevice(input, this.deps.key, this.deps.now());
    const db = this.deps.db();
    this.deps.tx(() => {
      this.deps.requireUser(device.ownerAddress);
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
      this.deps.publish({
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
    return this.deps
      .db()
      .prepare('SELECT * FROM devices WHERE owner = ? AND id = ?')
      .get(address, id) as DeviceRow | undefined;
  }

  async getDevice(address: string, id: string): Promise<Device | null> {
    if (!isRecordId(id)) return null;
    const row = this.#deviceRow(normaliseAddress(address), id);
    return row === undefined ? null : toDevice(row);
  }

  async getDeviceByName(address: string, name: string): Promise<Device | null> {
    const row = this.deps
      .db()
      .prepare('SELECT * FROM devices WHERE owner = ? AND name = ? AND revoked IS NULL')
      .get(normaliseAddress(address), checkDeviceName(name)) as DeviceRow | undefined;
    return row === undefined ? null : toDevice(row);
  }

  async listDevices(address: string): Promise<Device[]> {
    const rows = this.deps
      .db()
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
    this.deps.tx(() =>
      this.deps
        .db()
        .prepare('UPDATE devices SET last_seen = ? WHERE owner = ? AND id = ?')
        .run(at ?? this.deps.now(), normal, id),
    );
  }

  async revokeDevice(address: string, id: string): Promise<Device> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const db = this.deps.db();
    const now = this.deps.now();
    const { device, changed } = this.deps.tx(() => {
      const row = this.#deviceRow(normal, id);
      if (row === undefined) throw new NotFoundError('device', `no device ${id} of ${normal}`);
      if (row.revoked !== null) return { device: toDevice(row), changed: false };
      db.prepare('UPDATE devices SET revoked = ? WHERE owner = ? AND id = ?').run(now, normal, id);
      db.prepare('DELETE FROM device_keys WHERE owner = ? AND device = ?').run(normal, id);
      return { device: { ...toDevice(row), revoked: now }, changed: true };
    });
    if (changed)
      this.deps.publish({ type: 'device-revoked', address: normal, id, deviceId: device.deviceId });
    return device;
  }

  async putRecryptionKey(address: string, id: string, groupId: string, rk: Scalar): Promise<void> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const db = this.deps.db();
    const device = this.deps.tx(() => {
      const row = this.#deviceRow(normal, id);
      if (row === undefined || row.revoked !== null)
        throw new NotFoundError('device', `no active device ${id} of ${normal}`);
      db.prepare(
        `INSERT INTO device_keys (owner, device, group_id, wrapped) VALUES (?, ?, ?, ?)
           ON CONFLICT (owner, device, group_id) DO UPDATE SET wrapped = excluded.wrapped`,
      ).run(normal, id, groupId, wrapOne(this.deps.key, groupId, row.device_id, rk));
      return row;
    });
    this.deps.publish({
      type: 'key-added',
      address: normal,
      id,
      deviceId: device.device_id,
      groupId,
    });
  }

  async keysForDevice(address: string, id: string): Promise<Map<string, Scalar>> {
    const keys = new Map<string, Scalar>();
    if (!isRecordId(id)) return keys;
    const rows = this.deps
      .db()
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
        unwrapRecryptionKey(this.deps.key, row.wrapped, {
          groupId: row.group_id,
          targetId: row.device_id,
        }),
      );
    }
    return keys;
  }
}
