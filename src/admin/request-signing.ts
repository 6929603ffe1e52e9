/**
 * Owner-signed admin requests. After enrolment every request of an owner's CLI carries
 * an ECDSA P-256 / SHA-256 signature by the owner key over a canonical string that binds
 * method, path, body, a timestamp and a nonce. The gateway checks the signature with the
 * owner's enrolled public key, the timestamp against its clock (±5 minutes) and the
 * nonce against the key store (each accepted once), so a captured request cannot be
 * replayed or altered. Pure: no I/O; the caller supplies clock, nonce and key.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-recrypt-signature';
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface SignedRequestParts {
  method: string;
  /** Path and query exactly as sent, e.g. `/v1/devices?x=1`. */
  path: string;
  body: Uint8Array;
  address: string;
  timestamp: number;
  nonce: string;
}

export function canonicalRequest(parts: SignedRequestParts): Buffer {
  const bodyHash = createHash('sha256').update(parts.body).digest('hex');
  return Buffer.from(
    [
      'recrypt-admin-v1',
      parts.method.toUpperCase(),
      parts.path,
      parts.address.toLowerCase(),
      String(parts.timestamp),
      parts.nonce,
      bodyHash,
    ].join('\n'),
  );
}

/** The header value an owner's CLI sends. */
export function signRequest(parts: SignedRequestParts, ownerKey: KeyObject): string {
  const signature = sign('sha256', canonicalRequest(parts), {
    key: ownerKey,
    dsaEncoding: 'ieee-p1363',
  });
  return [
    `address=${encodeURIComponent(parts.address)}`,
    `ts=${parts.timestamp}`,
    `nonce=${parts.nonce}`,
    `sig=${signature.toString('base64url')}`,
  ].join(';');
}

export interface ParsedSignatureHeader {
  address: string;
  timestamp: number;
  nonce: string;
  signature: Buffer;
}

export class RequestSignatureError extends Error {
  override readonly name = 'RequestSignatureError';
  constructor(
    readonly reason: 'malformed' | 'stale' | 'bad-signature' | 'replayed' | 'unknown-owner',
    message: string,
  ) {
    super(message);
  }
}

export function parseSignatureHeader(value: string | undefined): ParsedSignatureHeader {
  if (value === undefined || value.length > 2048) {
    throw new RequestSignatureError('malformed', 'missing or oversized signature header');
  }
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) throw new RequestSignatureError('malformed', 'malformed signature header');
    fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const address = fields.get('address');
  const ts = fields.get('ts');
  const nonce = fields.get('nonce');
  const sig = fields.get('sig');
  if (
    address === undefined ||
    ts === undefined ||
    !/^\d{1,15}$/.test(ts) ||
    nonce === undefined ||
    !/^[A-Za-z0-9_-]{16,64}$/.test(nonce) ||
    sig === undefined ||
    !/^[A-Za-z0-9_-]{86}$/.test(sig)
  ) {
    throw new RequestSignatureError('malformed', 'malformed signature header');
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(address);
  } catch {
    throw new RequestSignatureError('malformed', 'malformed address in signature header');
  }
  return {
    address: decoded,
    timestamp: Number(ts),
    nonce,
    signature: Buffer.from(sig, 'base64url'),
  };
}

/**
 * Checks signature and freshness. Nonce uniqueness is the caller's (a key-store
 * set-if-absent), done only after this succeeds so that garbage cannot fill the store.
 */
export function verifyRequestSignature(
  header: ParsedSignatureHeader,
  request: { method: string; path: string; body: Uint8Array },
  ownerPublicKeySpki: Uint8Array,
  now: number,
): void {
  if (Math.abs(now - header.timestamp) > MAX_CLOCK_SKEW_MS) {
    throw new RequestSignatureError('stale', 'request timestamp outside the allowed clock skew');
  }
  const key = createPublicKey({
    key: Buffer.from(ownerPublicKeySpki),
    format: 'der',
    type: 'spki',
  });
  const ok = verify(
    'sha256',
    canonicalRequest({
      ...request,
      address: header.address,
      timestamp: header.timestamp,
      nonce: header.nonce,
    }),
    { key, dsaEncoding: 'ieee-p1363' },
    header.signature,
  );
  if (!ok) throw new RequestSignatureError('bad-signature', 'request signature does not verify');
}
