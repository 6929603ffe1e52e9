/**
 * Boundary checks shared by both adapters, so they accept and refuse exactly the same
 * input. Addresses are normalised here, all lower case: the domain is case-insensitive
 * (RFC 5321 §2.4), and this gateway is the destination, which may choose to treat the
 * local part so too. It does, like Dovecot's `%Lu` and every large provider, so that
 * `Alice@` and `alice@` are one mailbox for the MX, the proxy and profile lookups.
 */
import type { ClientKind, Scalar } from '../recrypt/types.js';
import { KeyStoreArgumentError } from './errors.js';

/** The P-256 group order n. */
export const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const MAX_ADDRESS = 254;
// Printable ASCII or UTF-8 (SMTPUTF8) without whitespace, controls or the hash-tag braces
// the Redis adapter uses to keep one user's keys in one cluster slot.
const ADDRESS_CHARS = /^[^\s\p{Cc}{}<>]+$/u;

export function normaliseAddress(address: string): string {
  if (typeof address !== 'string') throw new KeyStoreArgumentError('address must be a string');
  const trimmed = address.trim();
  const at = trimmed.lastIndexOf('@');
  if (
    trimmed.length === 0 ||
    trimmed.length > MAX_ADDRESS ||
    at <= 0 ||
    at === trimmed.length - 1 ||
    !ADDRESS_CHARS.test(trimmed)
  ) {
    throw new KeyStoreArgumentError('malformed address');
  }
  const domain = trimmed.slice(at + 1).toLowerCase();
  if (
    !/^[\p{L}\p{N}.-]+$/u.test(domain) ||
    domain.startsWith('.') ||
    domain.endsWith('.') ||
    domain.includes('..')
  ) {
    throw new KeyStoreArgumentError('malformed address domain');
  }
  return `${trimmed.slice(0, at).toLowerCase()}@${domain}`;
}

/** A RecipientId in lowercase hex (DER, so at least a few bytes; bounded). */
export function checkRecipientIdHex(value: string, what: string): string {
  if (typeof value !== 'string' || !/^(?:[0-9a-f]{2}){4,512}$/.test(value)) {
    throw new KeyStoreArgumentError(`${what} must be lowercase hex of a DER RecipientId`);
  }
  return value;
}

export function checkScalar(rk: Scalar, what = 'rk'): Scalar {
  if (typeof rk !== 'bigint' || rk <= 0n || rk >= P256_ORDER) {
    throw new KeyStoreArgumentError(`${what} must be a scalar in [1, n-1]`);
  }
  return rk;
}

export function checkDeviceName(name: string): string {
  if (typeof name !== 'string' || !/^[\p{L}\p{N}._ -]{1,64}$/u.test(name) || name.trim() !== name) {
    throw new KeyStoreArgumentError(
      'device name must be 1-64 letters, digits, space, dot, dash or underscore',
    );
  }
  return name;
}

export function checkDisplayName(name: string): string {
  if (typeof name !== 'string' || name.length > 200 || /\p{Cc}/u.test(name)) {
    throw new KeyStoreArgumentError('display name must be at most 200 characters without controls');
  }
  return name;
}

export function checkClient(client: ClientKind): ClientKind {
  if (client !== 'standard' && client !== 'outlook') {
    throw new KeyStoreArgumentError("client must be 'standard' or 'outlook'");
  }
  return client;
}

export function checkDer(value: Uint8Array, what: string): Uint8Array {
  if (
    !(value instanceof Uint8Array) ||
    value.length < 2 ||
    value.length > 64 * 1024 ||
    value[0] !== 0x30
  ) {
    throw new KeyStoreArgumentError(`${what} must be DER (a SEQUENCE, at most 64 KiB)`);
  }
  return value;
}

export function checkTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)
    throw new KeyStoreArgumentError('ttl must be a positive integer (ms)');
  return ttlMs;
}

export function checkOpaque(value: string, what: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new KeyStoreArgumentError(
      `${what} must be a non-empty string of at most ${max} characters`,
    );
  }
  return value;
}

export function scalarToBytes(rk: Scalar): Buffer {
  return Buffer.from(rk.toString(16).padStart(64, '0'), 'hex');
}

export function bytesToScalar(bytes: Uint8Array): Scalar {
  return BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}
