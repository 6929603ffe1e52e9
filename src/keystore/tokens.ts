/**
 * Enrolment tokens: 32 random bytes, base64url, handed to the owner once. The store
 * keeps only SHA-256 of the token (the token is high-entropy, so a slow hash adds
 * nothing) and compares hashes in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function newEnrolmentToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function tokenHashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Short random record ids for devices (64 bits: unique per owner with margin). */
export function newRecordId(): string {
  return randomBytes(8).toString('hex');
}
