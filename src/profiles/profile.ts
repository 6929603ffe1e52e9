/**
 * Building, signing and verifying ProfileMailPublic documents (docs/profile.md).
 * The signing key is the owner key (the owner CA key); its UDF fingerprint is the
 * profile's `udf`, and every connection key must be a certificate that key issued.
 * Pure: no I/O; the caller passes `now`.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { keyFingerprint } from '../recrypt/udf.js';
import { canonicalAddress } from './address.js';
import { ProfileError } from './errors.js';
import { decodeCompactJws, pointOfJwk, signCompactEs256, spkiOfPoint, verifyEs256 } from './jws.js';
import {
  profileMailPublicSchema,
  profilePayloadSchema,
  type MailPolicy,
  type ProfileMailPublic,
} from './schema.js';

/** The JOSE `typ` of a signed profile; anything else is refused (no cross-document reuse). */
export const PROFILE_JWS_TYP = 'mail-profile+jws';

/** Seconds an `issued` time may lie ahead of the verifier's clock. */
export const MAX_ISSUED_SKEW_SECONDS = 300;

/** A fingerprint given by a caller may be shorter than the profile's, but not below 125 bits. */
const MIN_EXPECTED_UDF_GROUPS = 7;

export interface BuildProfileInput {
  address: string;
  name: string;
  /** The owner key's public point (65 bytes, uncompressed) or its DER SubjectPublicKeyInfo. */
  ownerPublicKey: Uint8Array;
  groupCertificate: Uint8Array;
  prefer?: MailPolicy;
  require?: MailPolicy;
  issued: Date;
  expires?: Date;
}

export interface VerifyProfileOptions {
  /** The address the caller asked for; compared case-insensitively. */
  expectedAddress?: string;
  /** A UDF the caller already trusts for this owner (e.g. the owner CA's CN). */
  expectedUdf?: string;
  /** The verifier's clock; defaults to the current time. */
  now?: Date;
}

export interface VerifiedProfile {
  profile: ProfileMailPublic;
  /** DER SubjectPublicKeyInfo of the key that signed it. */
  ownerSpki: Uint8Array;
  /** DER of the first connection's group certificate. */
  groupCertificate: Uint8Array;
}

function spkiOf(ownerPublicKey: Uint8Array): Uint8Array {
  if (ownerPublicKey.length === 65) return spkiOfPoint(ownerPublicKey);
  try {
    const key = createPublicKey({ key: Buffer.from(ownerPublicKey), format: 'der', type: 'spki' });
    const jwk = key.export({ format: 'jwk' });
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('not P-256');
    return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  } catch {
    throw new ProfileError(
      'invalid-argument',
      'ownerPublicKey: neither a P-256 point nor a P-256 SubjectPublicKeyInfo',
    );
  }
}

/** The UDF a profile signed by this key must carry (accepts a point or an SPKI). */
export function ownerUdf(ownerPublicKey: Uint8Array): string {
  return keyFingerprint(spkiOf(ownerPublicKey));
}

function isoSeconds(date: Date): string {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new ProfileError('invalid-argument', 'date: not a valid Date');
  }
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A profile for one address with one SMTP/S-MIME connection, its `udf` computed from the owner key. */
export function buildProfile(input: BuildProfileInput): ProfileMailPublic {
  const draft = {
    address: canonicalAddress(input.address),
    name: input.name,
    udf: ownerUdf(input.ownerPublicKey),
    connection: [
      {
        protocol: 'SMTP',
        encrypt: 'S/MIME',
        prefer: input.prefer ?? 'encrypt',
        require: input.require ?? 'none',
        key: Buffer.from(input.groupCertificate).toString('base64'),
      },
    ],
    issued: isoSeconds(input.issued),
    ...(input.expires === undefined ? {} : { expires: isoSeconds(input.expires) }),
  };
  const parsed = profileMailPublicSchema.safeParse(draft);
  if (!parsed.success)
    throw new ProfileError('invalid-argument', `profile: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

function firstIssue(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const issue = error.issues[0];
  return issue === undefined
    ? 'invalid'
    : `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`;
}

/**
 * Each connection key must be a certificate the owner key signed (docs/design.md §2: the owner
 * CA issues the group certificate). Signing refuses such a profile as a bad argument;
 * verifying reports it as malformed (not a certificate) or a certificate mismatch.
 */
function checkConnectionKeys(
  profile: ProfileMailPublic,
  ownerSpki: Uint8Array,
  mode: 'sign' | 'verify',
): Uint8Array[] {
  const owner = createPublicKey({ key: Buffer.from(ownerSpki), format: 'der', type: 'spki' });
  return profile.connection.map((connection, index) => {
    const der = Buffer.from(connection.key, 'base64');
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(der);
    } catch {
      throw new ProfileError(
        mode === 'sign' ? 'invalid-argument' : 'malformed',
        `connection.${index}.key: not a DER X.509 certificate`,
      );
    }
    if (!certificate.verify(owner)) {
      throw new ProfileError(
        mode === 'sign' ? 'invalid-argument' : 'certificate-mismatch',
        `connection.${index}.key: not issued by the owner key`,
      );
    }
    return new Uint8Array(der);
  });
}

function payloadOf(profile: ProfileMailPublic): Uint8Array {
  // Fixed member order, so that the same profile always signs to the same bytes.
  const { address, name, udf, connection, issued, expires } = profile;
  const ordered = {
    address,
    name,
    udf,
    connection: connection.map(({ protocol, encrypt, prefer, require, key }) => ({
      protocol,
      encrypt,
      prefer,
      require,
      key,
    })),
    issued,
    ...(expires === undefined ? {} : { expires }),
  };
  return new Uint8Array(Buffer.from(JSON.stringify({ ProfileMailPublic: ordered }), 'utf8'));
}

function secretBytes(ownerSecret: Uint8Array | bigint): Uint8Array {
  const bytes =
    typeof ownerSecret === 'bigint'
      ? new Uint8Array(Buffer.from(ownerSecret.toString(16).padStart(64, '0'), 'hex'))
      : ownerSecret;
  if (
    !(bytes instanceof Uint8Array) ||
    bytes.length !== 32 ||
    !p256.utils.isValidSecretKey(bytes)
  ) {
    throw new ProfileError('invalid-argument', 'ownerSecret: not a P-256 scalar in [1, n-1]');
  }
  return bytes;
}

/**
 * Signs a profile with the owner key (scalar as 32 bytes big-endian or a bigint).
 * Refuses a profile that would not verify: schema, `udf` of this key, certificates it issued.
 * Deterministic (RFC 6979): the same profile and key give the same JWS.
 */
export function signProfile(profile: ProfileMailPublic, ownerSecret: Uint8Array | bigint): string {
  const secret = secretBytes(ownerSecret);
  const parsed = profileMailPublicSchema.safeParse(profile);
  if (!parsed.success)
    throw new ProfileError('invalid-argument', `profile: ${firstIssue(parsed.error)}`);
  const spki = spkiOfPoint(p256.getPublicKey(secret, false));
  if (parsed.data.udf !== keyFingerprint(spki)) {
    throw new ProfileError('udf-mismatch', 'profile.udf: not the fingerprint of the signing key');
  }
  checkConnectionKeys(parsed.data, spki, 'sign');
  return signCompactEs256(payloadOf(parsed.data), secret, { typ: PROFILE_JWS_TYP });
}

const normalizeUdf = (udf: string): string => udf.trim().toUpperCase();

function udfMatches(expected: string, actual: string): boolean {
  const want = normalizeUdf(expected);
  if (want.split('-').length < MIN_EXPECTED_UDF_GROUPS) return false;
  // A shorter UDF of the same data is a prefix of the longer one (draft §5), at a group boundary.
  return actual === want || actual.startsWith(`${want}-`);
}

/**
 * Verifies a signed profile: structure, ES256 signature under the header key, the key's
 * UDF against `udf` (and `expectedUdf`), the address, the validity window and that the
 * connection keys were issued by the owner key. Throws ProfileError naming the failure.
 */
export function verifyProfile(jws: string, options: VerifyProfileOptions = {}): VerifiedProfile {
  const decoded = decodeCompactJws(jws);
  const { header } = decoded;
  if (header['alg'] !== 'ES256')
    throw new ProfileError(
      'unsupported',
      `jws header: alg ${JSON.stringify(header['alg'])} is not ES256`,
    );
  if ('crit' in header) throw new ProfileError('unsupported', 'jws header: crit is not supported');
  if (header['typ'] !== PROFILE_JWS_TYP)
    throw new ProfileError('unsupported', `jws header: typ is not ${PROFILE_JWS_TYP}`);
  const point = pointOfJwk(header['jwk']);
  if (!verifyEs256(decoded.signingInput, decoded.signature, point)) {
    throw new ProfileError('bad-signature', 'jws: the ES256 signature does not verify');
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(decoded.payload).toString('utf8'));
  } catch {
    throw new ProfileError('malformed', 'jws payload: not JSON');
  }
  const parsed = profilePayloadSchema.safeParse(json);
  if (!parsed.success) throw new ProfileError('malformed', `profile: ${firstIssue(parsed.error)}`);
  const profile = parsed.data.ProfileMailPublic;
  const ownerSpki = spkiOfPoint(point);
  if (keyFingerprint(ownerSpki) !== profile.udf) {
    throw new ProfileError('udf-mismatch', 'profile.udf: not the fingerprint of the signing key');
  }
  if (options.expectedUdf !== undefined && !udfMatches(options.expectedUdf, profile.udf)) {
    throw new ProfileError('udf-mismatch', 'profile.udf: not the expected fingerprint');
  }
  if (options.expectedAddress !== undefined) {
    let expected: string;
    try {
      expected = canonicalAddress(options.expectedAddress);
    } catch {
      throw new ProfileError('invalid-argument', 'expectedAddress: not a supported mail address');
    }
    if (canonicalAddress(profile.address) !== expected) {
      throw new ProfileError('address-mismatch', 'profile.address: not the expected address');
    }
  }
  const now = (options.now ?? new Date()).getTime();
  if (profile.expires !== undefined && Date.parse(profile.expires) <= now) {
    throw new ProfileError('expired', 'profile.expires: has passed');
  }
  if (Date.parse(profile.issued) > now + MAX_ISSUED_SKEW_SECONDS * 1000) {
    throw new ProfileError('expired', 'profile.issued: lies in the future');
  }
  const [groupCertificate] = checkConnectionKeys(profile, ownerSpki, 'verify');
  return { profile, ownerSpki, groupCertificate: groupCertificate! };
}
