/**
 * What the gateway hands out during a list join and must recognise later without
 * storing it: the invite (list, member, expiry, remote or not) and the member's
 * blinding share τ = t⁻¹ (for a remote member, bound to their certificate).
 * Both are sealed with AES-256-GCM under a key derived from the admin token (a secret
 * only the gateway holds, in its data directory), with the purpose and the names bound as
 * AAD. Keeping them in the tokens keeps pending joins out of the key store: nothing to
 * expire or clean up, and the gateway holds τ only while it computes rk = β·τ.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { scalarFromBytes, scalarToBytes, type Scalar } from '../recrypt/index.js';
import { HttpError } from './http.js';

export const INVITE_TTL_MS = 14 * 24 * 3600 * 1000;
/** How long a member's join token (its sealed τ) waits for the list owner. */
export const JOIN_TTL_MS = 14 * 24 * 3600 * 1000;

function sealKey(adminToken: string): Buffer {
  return createHmac('sha256', adminToken).update('recrypt list-join seal v1').digest();
}

/** Also used for device pairing invites (pairing.ts), under their own AAD. */
export function seal(adminToken: string, aad: string, plain: Buffer): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey(adminToken), nonce);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url');
}

export function open(adminToken: string, aad: string, sealed: string, what: string): Buffer {
  const buf = Buffer.from(sealed, 'base64url');
  if (buf.length < 12 + 16 + 1) throw new HttpError(400, `${what}: not accepted`);
  const decipher = createDecipheriv('aes-256-gcm', sealKey(adminToken), buf.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(buf.subarray(buf.length - 16));
  try {
    return Buffer.concat([decipher.update(buf.subarray(12, buf.length - 16)), decipher.final()]);
  } catch {
    throw new HttpError(400, `${what}: not accepted`);
  }
}

export interface Invite {
  list: string;
  member: string;
  expires: number;
  /** For someone who is not a user here: they join with their own certificate. */
  remote?: true;
}

export function sealInvite(adminToken: string, invite: Invite): string {
  return seal(adminToken, 'invite', Buffer.from(JSON.stringify(invite)));
}

function openAnyInvite(adminToken: string, token: string, now: number): Invite {
  const invite = JSON.parse(open(adminToken, 'invite', token, 'invite').toString()) as Invite;
  if (invite.expires <= now) throw new HttpError(400, 'invite: expired');
  return invite;
}

/** The local invite, if it is ours, unexpired and for `member`; 400/403 otherwise. */
export function openInvite(adminToken: string, token: string, member: string, now: number): Invite {
  const invite = openAnyInvite(adminToken, token, now);
  if (invite.remote === true)
    throw new HttpError(403, 'invite: for a remote member (`recrypt list join`)');
  if (invite.member !== member) throw new HttpError(403, 'invite: for another member');
  return invite;
}

/** A remote member's invite, if it is ours and unexpired; 400/403 otherwise. */
export function openRemoteInvite(adminToken: string, token: string, now: number): Invite {
  const invite = openAnyInvite(adminToken, token, now);
  if (invite.remote !== true)
    throw new HttpError(
      403,
      'invite: for a user of this gateway; they accept it with `recrypt list accept`',
    );
  return invite;
}

/** A remote member's τ is also bound to their certificate (its SHA-256, hex). */
const tauAad = (list: string, member: string, expires: number, certificate?: string): string =>
  `tau\0${list}\0${member}\0${expires}${certificate === undefined ? '' : `\0cert:${certificate}`}`;

export function sealTau(
  adminToken: string,
  list: string,
  member: string,
  expires: number,
  tau: Scalar,
  certificateSha256?: string,
): string {
  const aad = tauAad(list, member, expires, certificateSha256);
  return `${expires}.${seal(adminToken, aad, Buffer.from(scalarToBytes(tau)))}`;
}

export function openTau(
  adminToken: string,
  list: string,
  member: string,
  token: string,
  now: number,
  certificateSha256?: string,
): Scalar {
  const dot = token.indexOf('.');
  const expires = Number(token.slice(0, dot));
  if (dot <= 0 || !Number.isSafeInteger(expires)) throw new HttpError(400, 'sealedTau: malformed');
  if (expires <= now) throw new HttpError(400, 'sealedTau: expired');
  const aad = tauAad(list, member, expires, certificateSha256);
  const plain = open(adminToken, aad, token.slice(dot + 1), 'sealedTau');
  try {
    return scalarFromBytes(plain);
  } catch {
    throw new HttpError(400, 'sealedTau: not accepted');
  }
}
