/**
 * SQLite rows ⇄ key-store records, and SQLite failures → the store's typed errors.
 */
import type { Device, OwnerCertificates, User } from '../types.js';
import { KeyStoreError, KeyStoreUnavailableError } from '../errors.js';

export interface UserRow {
  address: string;
  display_name: string;
  enrolment: 'pending' | 'enrolled';
  owner_ca: Buffer | null;
  group_cert: Buffer | null;
  group_id: string | null;
  owner_key_spki: Buffer | null;
  created: number;
}

export interface DeviceRow {
  owner: string;
  id: string;
  name: string;
  certificate: Buffer;
  device_id: string;
  client: 'standard' | 'outlook';
  credential_hash: string;
  created: number;
  last_seen: number | null;
  revoked: number | null;
}

export function toUser(row: UserRow): User {
  const owner: OwnerCertificates | null =
    row.enrolment === 'enrolled' &&
    row.owner_ca &&
    row.group_cert &&
    row.group_id &&
    row.owner_key_spki
      ? {
          ownerCaCertificate: new Uint8Array(row.owner_ca),
          groupCertificate: new Uint8Array(row.group_cert),
          groupId: row.group_id,
          ownerKeySpki: new Uint8Array(row.owner_key_spki),
        }
      : null;
  return {
    address: row.address,
    displayName: row.display_name,
    enrolment: row.enrolment,
    owner,
    created: row.created,
  };
}

export function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    ownerAddress: row.owner,
    name: row.name,
    certificate: new Uint8Array(row.certificate),
    deviceId: row.device_id,
    client: row.client,
    credentialHash: row.credential_hash,
    created: row.created,
    lastSeen: row.last_seen,
    revoked: row.revoked,
  };
}

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOLFS)/;

export function mapSqliteError(err: unknown): Error {
  if (err instanceof KeyStoreError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (UNAVAILABLE_CODES.test(code))
    return new KeyStoreUnavailableError(`key store unavailable (${code})`, { cause: err });
  return new KeyStoreError('corrupt', `key store refused a change (${code || 'error'})`, {
    cause: err,
  });
}
