import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfileMailPublic } from '../../src/profiles/index.js';

/** The one loader of test/vectors/profiles (see make-vectors.ts there for how they were made). */
export const PROFILE_VECTORS_DIR = join(import.meta.dirname, '..', 'vectors', 'profiles');

export const vectorPath = (name: string): string => join(PROFILE_VECTORS_DIR, name);

export function vectorBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(vectorPath(name)));
}

export function vectorText(name: string): string {
  return readFileSync(vectorPath(name), 'utf8');
}

export function vectorJson<T>(name: string): T {
  return JSON.parse(vectorText(name)) as T;
}

/** The P-256 scalar of a PKCS#8 PEM key file, 32 bytes big-endian. */
export function vectorSecret(name: string): Uint8Array {
  const jwk = createPrivateKey(readFileSync(vectorPath(name))).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.d ?? '', 'base64url'));
}

export interface ValidVector {
  address: string;
  udf: string;
  now: string;
  expiredAt: string;
}

export interface NegativeVector {
  name: string;
  code: string;
  jws: string;
}

export const loadProfileVector = (): ProfileMailPublic =>
  vectorJson<ProfileMailPublic>('profile.json');
