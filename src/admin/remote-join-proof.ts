/**
 * The remote member's proof of possession in a list join (docs/lists.md "Remote
 * members"): an ECDSA P-256 / SHA-256 signature (DER) by the certificate's key over a
 * domain-separated, length-prefixed encoding of (list, member, invite, τ). Binding the
 * invite and τ means a signature cannot be lifted into another join, and a certificate
 * someone merely copied cannot join: the gateway ends up with rk = g_list·d⁻¹ only for a
 * key the joiner holds. Shared by the gateway (verify) and `recrypt list join` (sign).
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { scalarToBytes, type Scalar } from '../recrypt/index.js';

const DOMAIN = 'recrypt remote list join v1';

export function remoteJoinMessage(
  list: string,
  member: string,
  invite: string,
  tau: Scalar,
): Buffer {
  const fields = [DOMAIN, list, member, invite].map((text) => Buffer.from(text, 'utf8'));
  fields.push(Buffer.from(scalarToBytes(tau)));
  return lengthPrefixed(fields);
}

/** Each field preceded by its 4-byte big-endian length: no two field lists encode alike. */
export function lengthPrefixed(fields: Uint8Array[]): Buffer {
  return Buffer.concat(
    fields.flatMap((field) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(field.length);
      return [length, field];
    }),
  );
}

export function signRemoteJoin(message: Buffer, key: KeyObject): Buffer {
  return sign('sha256', message, { key, dsaEncoding: 'der' });
}

/** True if `signature` is the certificate key's over `message`; false on any malformation. */
export function verifyRemoteJoin(message: Buffer, signature: Uint8Array, spki: Buffer): boolean {
  try {
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    return verify('sha256', message, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}
