/**
 * The SQLite adapter's mailbox group history and rotation (group-rotation.ts): table
 * `user_groups` (former groups; the current one stays in `users`). A rotation is one
 * IMMEDIATE transaction over users, user_groups, device_keys and profiles; its
 * `key-added` notifications are published after it committed.
 */
import type Database from 'better-sqlite3';
import { NotFoundError, StaleStateError } from '../errors.js';
import {
  checkRotation,
  planRotation,
  type GroupRotation,
  type GroupStore,
  type MailboxGroup,
} from '../group-rotation.js';
import type { GatewayKey } from '../key-wrapping.js';
import {
  decodePending,
  decodeRekey,
  encodePending,
  encodeRekey,
  type PendingRotation,
  type RekeyRequest,
  type RekeyStore,
} from '../rekey.js';
import type { KeyStoreEvent, User } from '../types.js';
import { normaliseAddress } from '../validate.js';
import { toDevice, toUser, type DeviceRow, type UserRow } from './rows.js';

export interface SqliteGroupDeps {
  db: () => Database.Database;
  tx: <T>(fn: () => T) => T;
  key: GatewayKey;
  now: () => number;
  publish: (event: KeyStoreEvent) => void;
}

export class SqliteGroups implements GroupStore, RekeyStore {
  constructor(private readonly deps: SqliteGroupDeps) {}

  async rotateGroup(address: string, input: GroupRotation): Promise<User> {
    const normal = normaliseAddress(address);
    const rotation = checkRotation(input);
    const db = this.deps.db();
    const newId = rotation.group.groupId;
    const { user, events } = this.deps.tx(() => {
      const row = db.prepare('SELECT * FROM users WHERE address = ?').get(normal) as
        UserRow | undefined;
      if (row === undefined || row.enrolment !== 'enrolled')
        throw new NotFoundError('user', `no enrolled user ${normal}`);
      const before = toUser(row);
      const activeDevices = (
        db
          .prepare('SELECT * FROM devices WHERE owner = ? AND revoked IS NULL ORDER BY rowid')
          .all(normal) as DeviceRow[]
      ).map(toDevice);
      const keyed = db
        .prepare('SELECT device FROM device_keys WHERE owner = ? AND group_id = ?')
        .all(normal, newId) as Array<{ device: string }>;
      const wrapped = planRotation(
        {
          user: before,
          formerGroupIds: this.#formerIds(normal),
          activeDevices,
          alreadyKeyed: new Set(keyed.map((k) => k.device)),
        },
        rotation,
        this.deps.key,
      );
      const current = before.owner!;
      db.prepare(
        'INSERT INTO user_groups (owner, group_id, certificate, retired) VALUES (?, ?, ?, ?)',
      ).run(normal, current.groupId, current.groupCertificate, this.deps.now());
      db.prepare('UPDATE users SET group_cert = ?, group_id = ? WHERE address = ?').run(
        rotation.group.certificate,
        newId,
        normal,
      );
      const putKey = db.prepare(
        `INSERT INTO device_keys (owner, device, group_id, wrapped) VALUES (?, ?, ?, ?)
           ON CONFLICT (owner, device, group_id) DO UPDATE SET wrapped = excluded.wrapped`,
      );
      for (const [id, key] of wrapped) putKey.run(normal, id, newId, key);
      db.prepare(
        `INSERT INTO profiles (address, document) VALUES (?, ?)
         ON CONFLICT (address) DO UPDATE SET document = excluded.document`,
      ).run(normal, rotation.profile);
      db.prepare('DELETE FROM pending_rotations WHERE owner = ?').run(normal);
      db.prepare('DELETE FROM rekey_requests WHERE owner = ?').run(normal);
      const after = db.prepare('SELECT * FROM users WHERE address = ?').get(normal) as UserRow;
      const byId = new Map(activeDevices.map((d) => [d.id, d]));
      const added: KeyStoreEvent[] = [...wrapped.keys()].map((id) => ({
        type: 'key-added',
        address: normal,
        id,
        deviceId: byId.get(id)!.deviceId,
        groupId: newId,
      }));
      return { user: toUser(after), events: added };
    });
    for (const event of events) this.deps.publish(event);
    return user;
  }

  #formerIds(address: string): string[] {
    return (
      this.deps
        .db()
        .prepare('SELECT group_id FROM user_groups WHERE owner = ?')
        .all(address) as Array<{ group_id: string }>
    ).map((row) => row.group_id);
  }

  async formerGroups(address: string): Promise<MailboxGroup[]> {
    const rows = this.deps
      .db()
      .prepare(
        'SELECT group_id, certificate FROM user_groups WHERE owner = ? ORDER BY retired, rowid',
      )
      .all(normaliseAddress(address)) as Array<{ group_id: string; certificate: Buffer }>;
    return rows.map((row) => ({
      groupId: row.group_id,
      certificate: new Uint8Array(row.certificate),
    }));
  }

  // --- a full rotation waiting for the devices (rekey.ts) ---

  #pending(address: string): PendingRotation | null {
    const row = this.deps
      .db()
      .prepare(
        `SELECT p.record, u.group_id FROM users u LEFT JOIN pending_rotations p ON p.owner = u.address
         WHERE u.address = ?`,
      )
      .get(address) as { record: string | null; group_id: string | null } | undefined;
    return row === undefined ? null : decodePending(row.record, row.group_id, this.deps.now());
  }

  async startRotation(
    address: string,
    input: Pick<PendingRotation, 'fromGroupId' | 'group' | 'profile'>,
    ttlMs: number,
  ): Promise<PendingRotation> {
    const normal = normaliseAddress(address);
    const { record, pending } = encodePending(input, this.deps.now(), ttlMs);
    const db = this.deps.db();
    this.deps.tx(() => {
      const row = db.prepare('SELECT * FROM users WHERE address = ?').get(normal) as
        UserRow | undefined;
      if (row === undefined || row.enrolment !== 'enrolled')
        throw new NotFoundError('user', `no enrolled user ${normal}`);
      if (row.group_id !== pending.fromGroupId)
        throw new StaleStateError('the mailbox was rotated meanwhile (stale group id)');
      db.prepare(
        `INSERT INTO pending_rotations (owner, record) VALUES (?, ?)
         ON CONFLICT (owner) DO UPDATE SET record = excluded.record`,
      ).run(normal, record);
      db.prepare('DELETE FROM rekey_requests WHERE owner = ?').run(normal);
    });
    return pending;
  }

  async pendingRotation(address: string): Promise<PendingRotation | null> {
    return this.#pending(normaliseAddress(address));
  }

  async cancelRotation(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    const db = this.deps.db();
    this.deps.tx(() => {
      db.prepare('DELETE FROM pending_rotations WHERE owner = ?').run(normal);
      db.prepare('DELETE FROM rekey_requests WHERE owner = ?').run(normal);
    });
  }

  async putRekeyRequest(address: string, request: Omit<RekeyRequest, 'created'>): Promise<void> {
    const normal = normaliseAddress(address);
    const record = encodeRekey(request, this.deps.key, this.deps.now());
    const db = this.deps.db();
    this.deps.tx(() => {
      if (this.#pending(normal)?.group.groupId !== request.groupId)
        throw new StaleStateError('no rotation to this group is pending');
      const device = db
        .prepare('SELECT revoked FROM devices WHERE owner = ? AND id = ?')
        .get(normal, request.id) as { revoked: number | null } | undefined;
      if (device === undefined || device.revoked !== null)
        throw new NotFoundError('device', `no active device ${request.id} of ${normal}`);
      db.prepare(
        `INSERT INTO rekey_requests (owner, device, record) VALUES (?, ?, ?)
         ON CONFLICT (owner, device) DO UPDATE SET record = excluded.record`,
      ).run(normal, request.id, record);
    });
  }

  async rekeyRequests(address: string): Promise<RekeyRequest[]> {
    const normal = normaliseAddress(address);
    const pending = this.#pending(normal);
    if (pending === null) return [];
    const rows = this.deps
      .db()
      .prepare('SELECT record FROM rekey_requests WHERE owner = ? ORDER BY rowid')
      .all(normal) as Array<{ record: string }>;
    return rows
      .map((row) => decodeRekey(row.record, this.deps.key))
      .filter((r) => r.groupId === pending.group.groupId);
  }

  async removeRekeyRequest(address: string, id: string): Promise<void> {
    const normal = normaliseAddress(address);
    this.deps.tx(() =>
      this.deps
        .db()
        .prepare('DELETE FROM rekey_requests WHERE owner = ? AND device = ?')
        .run(normal, id),
    );
  }
}
