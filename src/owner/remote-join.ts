/**
 * A remote member's side of a list join (docs/lists.md "Remote members"), run on the
 * member's own machine with their own S/MIME certificate and key: no owner key file, no
 * account on the gateway. Also the invitation the list owner hands them: one token that
 * carries the gateway's URL, the certificate the owner's CLI trusts for it (so a
 * self-signed gateway works), the list, the address and the gateway's sealed invite.
 *
 * The join: pick t, send τ = t⁻¹ with the certificate and a signature by its key (proof
 * of possession, remote-join-proof.ts), seal α = t·d⁻¹ to the list key the gateway
 * answers with (ECIES, exactly as `list accept`), and print the join token for the owner.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { remoteJoinMessage, signRemoteJoin } from '../admin/remote-join-proof.js';
import {
  blindDeviceSecret,
  certificatePublicPoint,
  privateKeyObject,
  publicPoint,
  readPkcs12,
  recipientIdOf,
  RecryptError,
  scalarFromBytes,
  scalarToBytes,
  toPem,
  type Scalar,
} from '../recrypt/index.js';
import { OwnerError } from './errors.js';
import { callGateway, parseGatewayUrl } from './gateway-client.js';
import { decodeJoinToken, encodeJoinToken, sealAlpha } from './list-join.js';

const PREFIX = 'rli1.';

export interface Invitation {
  /** The gateway's admin API origin, as the list owner's CLI uses it. */
  gateway: string;
  /** DER (base64) of the certificate the owner's CLI trusts for it; absent: the system's CAs. */
  ca?: string;
  list: string;
  member: string;
  /** The gateway's sealed invite (single use, expires). */
  invite: string;
}

export function encodeInvitation(invitation: Invitation): string {
  return PREFIX + Buffer.from(JSON.stringify(invitation)).toString('base64url');
}

export function decodeInvitation(text: string): Invitation {
  const fail = () => new OwnerError('invalid-argument', 'invitation: malformed');
  const trimmed = text.trim();
  if (!trimmed.startsWith(PREFIX)) throw fail();
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(Buffer.from(trimmed.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw fail();
  }
  for (const field of ['gateway', 'list', 'member', 'invite'])
    if (typeof value[field] !== 'string' || (value[field] as string).length > 2048) throw fail();
  if (value.ca !== undefined && typeof value.ca !== 'string') throw fail();
  parseGatewayUrl(value.gateway as string);
  return value as unknown as Invitation;
}

/** The PEM trust anchor of an invitation, and its SHA-256 to compare out of band. */
export function invitationTrust(invitation: Invitation): { pem: string; sha256: string } | null {
  if (invitation.ca === undefined) return null;
  const der = Buffer.from(invitation.ca, 'base64');
  return { pem: toPem(new Uint8Array(der)), sha256: fingerprint(der) };
}

export function fingerprint(der: Uint8Array): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** The DER of the first certificate in a PEM text (the owner's gateway trust anchor). */
export function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(new X509Certificate(pem).raw);
}

export interface RemoteIdentity {
  secret: Scalar;
  certificate: Uint8Array;
}

const identityError = (message: string) => new OwnerError('invalid-argument', message);

function readFileOr(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new OwnerError(
      'io',
      `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** Your key and certificate from a .p12 (OpenSSL 3's default PBES2/AES layout works). */
export async function identityFromPkcs12(file: string, password: string): Promise<RemoteIdentity> {
  try {
    const p12 = await readPkcs12(new Uint8Array(readFileOr(file, '.p12')), password);
    return { secret: p12.deviceSecret, certificate: p12.certificate };
  } catch (error) {
    if (error instanceof RecryptError) throw identityError(`${file}: ${error.message}`);
    throw error;
  }
}

/** Your key (PEM, unencrypted PKCS#8 or SEC1) and certificate (PEM) from two files. */
export function identityFromPem(keyFile: string, certFile: string): RemoteIdentity {
  let jwk: { crv?: string; d?: string };
  let certificate: Uint8Array;
  try {
    jwk = createPrivateKey(readFileOr(keyFile, 'key file')).export({ format: 'jwk' });
  } catch (error) {
    if (error instanceof OwnerError) throw error;
    throw identityError(`${keyFile}: not an unencrypted PEM private key`);
  }
  try {
    certificate = new Uint8Array(new X509Certificate(readFileOr(certFile, 'certificate')).raw);
  } catch (error) {
    if (error instanceof OwnerError) throw error;
    throw identityError(`${certFile}: not a PEM certificate`);
  }
  if (jwk.crv !== 'P-256' || jwk.d === undefined)
    throw identityError(`${keyFile}: not a P-256 key (the list join needs P-256)`);
  const secret = scalarFromBytes(Buffer.from(jwk.d, 'base64url'));
  return { secret, certificate };
}

function checkPair(identity: RemoteIdentity): void {
  let point: Uint8Array;
  try {
    point = certificatePublicPoint(identity.certificate);
  } catch {
    throw identityError('your certificate does not hold a P-256 key');
  }
  if (!Buffer.from(point).equals(Buffer.from(publicPoint(identity.secret))))
    throw identityError('the key does not belong to the certificate');
}

/**
 * The join from the member's machine: returns the join token (rlj1.…) for the list
 * owner. The gateway checks the certificate and the signature; this side checks that
 * the list key it got is the one the answer names.
 */
export async function joinRemote(
  invitation: Invitation,
  identity: RemoteIdentity,
): Promise<string> {
  checkPair(identity);
  const request = blindDeviceSecret(identity.secret);
  const tau = request.toGateway;
  const message = remoteJoinMessage(invitation.list, invitation.member, invitation.invite, tau);
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  const reply = await callGateway<{
    list: string;
    member: string;
    groupId: string;
    groupCertificate: string;
    sealedTau: string;
  }>(
    {
      gateway: invitation.gateway,
      ca: invitationTrust(invitation)?.pem ?? null,
      auth: { kind: 'none' },
    },
    'POST',
    '/v1/list-joins/remote',
    {
      invite: invitation.invite,
      certificate: b64(identity.certificate),
      tau: b64(scalarToBytes(tau)),
      signature: b64(signRemoteJoin(message, privateKeyObject(identity.secret))),
    },
  );
  const listCertificate = new Uint8Array(Buffer.from(reply.groupCertificate, 'base64'));
  if (
    reply.list !== invitation.list ||
    reply.member !== invitation.member ||
    Buffer.from(recipientIdOf(listCertificate)).toString('hex') !== reply.groupId
  )
    throw new OwnerError('gateway-refused', 'the gateway answered for another list or key');
  return encodeJoinToken({
    list: reply.list,
    member: reply.member,
    groupId: reply.groupId,
    sealedAlpha: sealAlpha(request.toOwner, certificatePublicPoint(listCertificate), reply.groupId),
    sealedTau: reply.sealedTau,
    certificate: b64(identity.certificate),
  });
}

/** A remote member's join token: who, and their certificate's SHA-256; null for a local one. */
export function remoteCertificateOf(joinToken: string): { member: string; sha256: string } | null {
  const token = decodeJoinToken(joinToken);
  if (token.certificate === undefined) return null;
  return { member: token.member, sha256: fingerprint(Buffer.from(token.certificate, 'base64')) };
}
