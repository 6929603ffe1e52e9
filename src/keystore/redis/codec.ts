/**
 * How the Redis adapter's records look on the wire (hash fields, device JSON with
 * base64 DER) and how ioredis failures become the store's typed errors.
 */
import { KeyStoreError, KeyStoreUnavailableError } from '../errors.js';
import type { Device, User } from '../types.js';

const TRANSIENT_REPLY =
  /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|NOREPLICAS|READONLY|BUSY|MOVED|ASK)\b/;

/** Turns anything ioredis throws into the store's typed errors. */
export function mapError(err: unknown): KeyStoreError {
  if (err instanceof KeyStoreError) return err;
  const e = err as { name?: string; message?: string };
  if (e?.name === 'ReplyError' && !TRANSIENT_REPLY.test(e.message ?? '')) {
    return new KeyStoreError(
      'corrupt',
      `key store refused a command: ${String(e.message).slice(0, 200)}`,
      { cause: err },
    );
  }
  return new KeyStoreUnavailableError('key store unavailable', { cause: err });
}

export interface StoredDevice {
  id: string;
  ownerAddress: string;
  name: string;
  certificate: string;
  deviceId: string;
  client: 'standard' | 'outlook';
  credentialHash: string;
  created: number;
  /** Per-user insertion order, added by the add-device script. */
  seq?: number;
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

export function toUser(h: Record<string, string>): User | null {
  if (h.address === undefined) return null;
  const enrolled =
    h.enrolment === 'enrolled' && h.ownerCa && h.groupCert && h.groupId && h.ownerKeySpki;
  return {
    address: h.address,
    displayName: h.displayName ?? '',
    enrolment: h.enrolment === 'enrolled' ? 'enrolled' : 'pending',
    owner: enrolled
      ? {
          ownerCaCertificate: unb64(h.ownerCa!),
          groupCertificate: unb64(h.groupCert!),
          groupId: h.groupId!,
          ownerKeySpki: unb64(h.ownerKeySpki!),
        }
      : null,
    created: Number(h.created),
  };
}

export function toDevice(
  json: string,
  seen: string | undefined | null,
  revoked: string | undefined | null,
): Device {
  const s = JSON.parse(json) as StoredDevice;
  return {
    id: s.id,
    ownerAddress: s.ownerAddress,
    name: s.name,
    certificate: unb64(s.certificate),
    deviceId: s.deviceId,
    client: s.client,
    credentialHash: s.credentialHash,
    created: s.created,
    lastSeen: seen == null ? null : Number(seen),
    revoked: revoked == null ? null : Number(revoked),
  };
}
