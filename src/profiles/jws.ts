/**
 * The one JWS form profiles use: RFC 7515 compact serialization, `alg` ES256 (RFC 7518
 * §3.4: ECDSA P-256 with SHA-256, signature the 64-byte r||s), the signer's public key
 * carried in the protected header as a JWK (RFC 7517; `x`, `y` only, never `d`).
 * Hand-written rather than a JOSE library because it is this one fixed profile, its
 * verifier must refuse everything else (other algs, `crit`, `none`), and signing must be
 * deterministic (RFC 6979 via @noble/curves) so that test vectors reproduce byte for byte.
 * Verifying goes through node:crypto (OpenSSL) instead: profiles arrive from untrusted
 * places, and pure-JS ECDSA verification spends milliseconds of the one event loop that
 * serves every listener, about ten times what OpenSSL needs. node:crypto cannot do the
 * signing: its ECDSA signatures are randomised, not RFC 6979.
 * Pure: no I/O, no clock.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ProfileError } from './errors.js';

export interface Es256Jwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface DecodedJws {
  header: Record<string, unknown>;
  payload: Uint8Array;
  /** ASCII of `<protected>.<payload>`: the bytes the signature covers. */
  signingInput: Uint8Array;
  signature: Uint8Array;
}

/** Larger than any profile needs (a few certificates); bounds work on hostile input. */
export const MAX_JWS_LENGTH = 64 * 1024;

const B64URL = /^[A-Za-z0-9_-]*$/;

export function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** Strict base64url: the alphabet only, no padding, and canonical (re-encodes identically). */
export function fromBase64url(text: string, what: string): Uint8Array {
  if (!B64URL.test(text) || text.length % 4 === 1) {
    throw new ProfileError('malformed', `${what}: not base64url`);
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text)
    throw new ProfileError('malformed', `${what}: not canonical base64url`);
  return new Uint8Array(bytes);
}

/** The JWK of an uncompressed P-256 point (0x04 || X || Y). */
export function jwkOfPoint(point: Uint8Array): Es256Jwk {
  if (point.length !== 65 || point[0] !== 0x04) {
    throw new ProfileError('invalid-argument', 'public key: not an uncompressed P-256 point');
  }
  return {
    kty: 'EC',
    crv: 'P-256',
    x: base64url(point.subarray(1, 33)),
    y: base64url(point.subarray(33)),
  };
}

/** The uncompressed point of a header JWK, checked to lie on P-256. */
export function pointOfJwk(jwk: unknown): Uint8Array {
  if (typeof jwk !== 'object' || jwk === null)
    throw new ProfileError('malformed', 'header jwk: missing');
  const k = jwk as Record<string, unknown>;
  if ('d' in k) throw new ProfileError('malformed', 'header jwk: carries a private key');
  if (k['kty'] !== 'EC' || k['crv'] !== 'P-256')
    throw new ProfileError('unsupported', 'header jwk: not an EC P-256 key');
  if (typeof k['x'] !== 'string' || typeof k['y'] !== 'string') {
    throw new ProfileError('malformed', 'header jwk: x or y missing');
  }
  const x = fromBase64url(k['x'], 'header jwk x');
  const y = fromBase64url(k['y'], 'header jwk y');
  if (x.length !== 32 || y.length !== 32)
    throw new ProfileError('malformed', 'header jwk: x or y not 32 bytes');
  const point = new Uint8Array(65);
  point[0] = 0x04;
  point.set(x, 1);
  point.set(y, 33);
  try {
    // The curve equation only (no scalar multiplication): microseconds even in pure JS.
    p256.Point.fromBytes(point).assertValidity();
  } catch {
    throw new ProfileError('malformed', 'header jwk: not a point on P-256');
  }
  return point;
}

/**
 * The node:crypto key of a P-256 JWK. OpenSSL refuses (throws on) a coordinate ≥ p and a
 * point off the curve: importing a JWK checks the key it builds (a scalar multiplication,
 * so about a third of what a verification costs).
 */
function publicKeyOfJwk(jwk: Es256Jwk): KeyObject {
  return createPublicKey({ key: { ...jwk }, format: 'jwk' });
}

/** DER SubjectPublicKeyInfo of an uncompressed P-256 point (what a certificate carries). */
export function spkiOfPoint(point: Uint8Array): Uint8Array {
  const jwk = jwkOfPoint(point);
  try {
    return new Uint8Array(publicKeyOfJwk(jwk).export({ type: 'spki', format: 'der' }));
  } catch {
    throw new ProfileError('invalid-argument', 'public key: not a point on P-256');
  }
}

/**
 * Signs `payload` with the P-256 scalar `secret` (32 bytes big-endian). The protected
 * header is `extraHeader` plus `alg` and the signer's `jwk`, in that fixed member order.
 */
export function signCompactEs256(
  payload: Uint8Array,
  secret: Uint8Array,
  extraHeader: Record<string, string>,
): string {
  const point = p256.getPublicKey(secret, false);
  const header = { alg: 'ES256', ...extraHeader, jwk: jwkOfPoint(point) };
  const signingInput = `${base64url(Buffer.from(JSON.stringify(header)))}.${base64url(payload)}`;
  const signature = p256.sign(Buffer.from(signingInput, 'ascii'), secret, {
    prehash: true,
    format: 'compact',
  });
  return `${signingInput}.${base64url(signature)}`;
}

/** Splits and decodes a compact JWS; checks structure only, not the signature. */
export function decodeCompactJws(jws: string): DecodedJws {
  if (typeof jws !== 'string' || jws.length > MAX_JWS_LENGTH) {
    throw new ProfileError('malformed', 'jws: not a string of at most 64 KiB');
  }
  const parts = jws.trim().split('.');
  if (parts.length !== 3) throw new ProfileError('malformed', 'jws: not three dot-separated parts');
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(fromBase64url(h, 'jws header')).toString('utf8'));
  } catch (error) {
    if (error instanceof ProfileError) throw error;
    throw new ProfileError('malformed', 'jws header: not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ProfileError('malformed', 'jws header: not a JSON object');
  }
  return {
    header: header as Record<string, unknown>,
    payload: fromBase64url(p, 'jws payload'),
    signingInput: new Uint8Array(Buffer.from(`${h}.${p}`, 'ascii')),
    signature: fromBase64url(s, 'jws signature'),
  };
}

/**
 * Verifies an ES256 signature (r||s, exactly 64 bytes) with OpenSSL. High-S signatures
 * are accepted: RFC 7518 does not forbid them and other signers (node:crypto, OpenSSL,
 * the RFC 7515 A.3 example itself) produce them. `point` is the uncompressed form
 * `pointOfJwk` returns. Anything unusable — a point off P-256 or of another form, r or s
 * outside [1, n−1] — is `false`, never an exception.
 */
export function verifyEs256(
  signingInput: Uint8Array,
  signature: Uint8Array,
  point: Uint8Array,
): boolean {
  if (signature.length !== 64) return false;
  try {
    const key = publicKeyOfJwk(jwkOfPoint(point));
    return verify('sha256', signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}
