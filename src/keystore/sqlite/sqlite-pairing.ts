/**
 * The SQLite adapter's pending device pairings: table `pairing_requests` (schema.ts,
 * migration 4), one JSON record per (owner, id) from keystore/pairing.ts, gone with the
 * user row (ON DELETE CASCADE). Expired rows are deleted by the next add.
 */
import type Database from 'better-sqlite3';
import { NotFoundError } from '../errors.js';
import type { GatewayKey } from '../key-wrapping.js';
import {
  approvedPairing,
  decodePairing,
  encodePairing,
  LimitError,
  type NewPairingRequest,
  type PairingRequest,
  type PairingStore,
  preparePairing,
} from '../pairing.js';
import { isRecordId } from '../prepare.js';
import { normaliseAddress } from '../validate.js';

export interface SqlitePairingDeps {
  db: () => Database.Database;
  tx: <T>(fn: () => T) => T;
  key: GatewayKey;
  now: () => number;
  /** Throws NotFoundError('user') inside a transaction when the owner is gone. */
  requireUser: (address: string) => void;
}

export class SqlitePairings implements PairingStore {
  constructor(private readonly deps: SqlitePairingDeps) {}

  async addPairingRequest(input: NewPairingRequest, maxPending: number): Promise<PairingRequest> {
    const now = this.deps.now();
    const { request, stored } = preparePairing(input, this.deps.key, now);
    const db = this.deps.db();
    this.deps.tx(() => {
      this.deps.requireUser(request.ownerAddress);
      db.prepare('DELETE FROM pairing_requests WHERE expires <= ?').run(now);
      const { n } = db
        .prepare('SELECT count(*) AS n FROM pairing_requests WHERE owner = ?')
        .get(request.ownerAddress) as { n: number };
      if (n >= maxPending)
        throw new LimitError(`${request.ownerAddress} has ${n} pairing requests waiting`);
      db.prepare(
        'INSERT INTO pairing_requests (owner, id, expires, record) VALUES (?, ?, ?, ?)',
      ).run(request.ownerAddress, request.id, request.expires, stored);
    });
    return request;
  }

  async listPairingRequests(address: string): Promise<PairingRequest[]> {
    const rows = this.deps
      .db()
      .prepare('SELECT record FROM pairing_requests WHERE owner = ? AND expires > ? ORDER BY rowid')
      .all(normaliseAddress(address), this.deps.now()) as Array<{ record: string }>;
    return rows.map((row) => decodePairing(row.record, this.deps.key));
  }

  async getPairingRequest(address: string, id: string): Promise<PairingRequest | null> {
    if (!isRecordId(id)) return null;
    const row = this.deps
      .db()
      .prepare('SELECT record FROM pairing_requests WHERE owner = ? AND id = ? AND expires > ?')
      .get(normaliseAddress(address), id, this.deps.now()) as { record: string } | undefined;
    return row === undefined ? null : decodePairing(row.record, this.deps.key);
  }

  async approvePairingRequest(
    address: string,
    id: string,
    certificate: Uint8Array,
  ): Promise<PairingRequest> {
    const normal = normaliseAddress(address);
    const db = this.deps.db();
    const gone = () => new NotFoundError('pairing-request', `no pending pairing request ${id}`);
    if (!isRecordId(id)) throw gone();
    return this.deps.tx(() => {
      const row = db
        .prepare('SELECT record FROM pairing_requests WHERE owner = ? AND id = ? AND expires > ?')
        .get(normal, id, this.deps.now()) as { record: string } | undefined;
      if (row === undefined) throw gone();
      const before = decodePairing(row.record, this.deps.key);
      if (before.approvedCertificate !== null) throw gone();
      const after = approvedPairing(before, certificate);
      db.prepare('UPDATE pairing_requests SET record = ? WHERE owner = ? AND id = ?').run(
        encodePairing(after, this.deps.key),
        normal,
        id,
      );
      return after;
    });
  }

  async removePairingRequest(address: string, id: string): Promise<boolean> {
    if (!isRecordId(id)) return false;
    const normal = normaliseAddress(address);
    const info = this.deps.tx(() =>
      this.deps
        .db()
        .prepare('DELETE FROM pairing_requests WHERE owner = ? AND id = ?')
        .run(normal, id),
    );
    return info.changes > 0;
  }
}
