/**
 * The member's α on its way to the list owner. α = t·g_member⁻¹ travels through the
 * gateway (in the join token), and the gateway also holds τ = t⁻¹: together they give
 * g_member⁻¹. So α is sealed to the list's group key G_list (ECIES: ephemeral ECDH on
 * P-256, HKDF-SHA-256, AES-256-GCM), which only the list owner's CLI can open. Hand-
 * written over node:crypto and the recrypt core because it is ~40 lines and no
 * maintained package does ECIES on raw P-256 points with bigint scalars.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import {
  multiplyPoint,
  publicPoint,
  randomScalar,
  scalarFromBytes,
  scalarToBytes,
  validatePoint,
  type Scalar,
} from '../recrypt/index.js';
import { OwnerError } from './errors.js';

/**
 * What the sealed α is for: a list join, or a device pairing (src/owner/pairing-device.ts,
 * sealed to the owner's own group key). The purpose goes into the key derivation, so an
 * α sealed for one cannot be opened as the other.
 */
export type AlphaPurpose = 'list-join' | 'device-pairing' | 'device-rekey';

function kek(
  shared: Uint8Array,
  ephemeral: Uint8Array,
  listGroupId: string,
  purpose: AlphaPurpose,
): Buffer {
  const salt = Buffer.concat([Buffer.from(ephemeral), Buffer.from(listGroupId, 'utf8')]);
  const info = Buffer.from(`recrypt ${purpose} alpha v1`);
  return Buffer.from(hkdfSync('sha256', Buffer.from(shared.subarray(1, 33)), salt, info, 32));
}

/** Seals α to the list group's public point; bound to the list group id. */
export function sealAlpha(
  alpha: Scalar,
  listPoint: Uint8Array,
  listGroupId: string,
  purpose: AlphaPurpose = 'list-join',
): string {
  const e = randomScalar();
  const ephemeral = publicPoint(e);
  const key = kek(multiplyPoint(listPoint, e), ephemeral, listGroupId, purpose);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(scalarToBytes(alpha)), cipher.final()]);
  return Buffer.concat([ephemeral, nonce, body, cipher.getAuthTag()]).toString('base64url');
}

/** The list owner's side: opens α with g_list. */
export function openAlpha(
  sealed: string,
  listSecret: Scalar,
  listGroupId: string,
  purpose: AlphaPurpose = 'list-join',
): Scalar {
  const buf = Buffer.from(sealed, 'base64url');
  const fail = () =>
    new OwnerError('invalid-argument', 'join token: not for this list key (or damaged)');
  if (buf.length !== 65 + 12 + 32 + 16) throw fail();
  const ephemeral = buf.subarray(0, 65);
  if (!validatePoint(ephemeral)) throw fail();
  const key = kek(multiplyPoint(ephemeral, listSecret), ephemeral, listGroupId, purpose);
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(65, 77));
  decipher.setAuthTag(buf.subarray(buf.length - 16));
  try {
    return scalarFromBytes(
      Buffer.concat([decipher.update(buf.subarray(77, buf.length - 16)), decipher.final()]),
    );
  } catch {
    throw fail();
  }
}

/** What the member sends the list owner (by any channel): opaque to the gateway. */
export interface JoinToken {
  list: string;
  member: string;
  /** The list group the α was sealed to (the owner opens it with that group's secret). */
  groupId: string;
  sealedAlpha: string;
  /** τ sealed by the gateway for itself; the owner passes it back with β. */
  sealedTau: string;
  /** A remote member's certificate (base64 DER); the sealed τ is bound to it. */
  certificate?: string;
}

export function encodeJoinToken(token: JoinToken): string {
  return `rlj1.${Buffer.from(JSON.stringify(token)).toString('base64url')}`;
}

export function decodeJoinToken(text: string): JoinToken {
  const fail = () => new OwnerError('invalid-argument', 'join token: malformed');
  if (!text.trim().startsWith('rlj1.')) throw fail();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text.trim().slice(5), 'base64url').toString('utf8'));
  } catch {
    throw fail();
  }
  const t = value as Record<string, unknown>;
  for (const field of ['list', 'member', 'groupId', 'sealedAlpha', 'sealedTau']) {
    if (typeof t[field] !== 'string' || (t[field] as string).length > 2048) throw fail();
  }
  if (t.certificate !== undefined) {
    if (typeof t.certificate !== 'string' || t.certificate.length > 22_000) throw fail();
  }
  return t as unknown as JoinToken;
}
