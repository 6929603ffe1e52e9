/**
 * Device credentials. The owner's CLI generates a device password, uploads only
 * `hashDeviceCredential(password)`; the IMAP proxy checks a login with
 * `verifyDeviceCredential`. scrypt from node:crypto (memory-hard, no native add-on);
 * the parameters travel inside the hash string so they can be raised later.
 * Format: `scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>`.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const KEY_LENGTH = 32;
// 2^14 × 8 × 128 B = 16 MiB, ~50 ms: device passwords are generated (high entropy), so this
// guards a stolen hash list without making every IMAP login expensive.
const DEFAULT = { logN: 14, r: 8, p: 1 };
const MAX_PASSWORD = 1024;

function scryptAsync(
  password: string,
  salt: Buffer,
  logN: number,
  r: number,
  p: number,
): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      KEY_LENGTH,
      { N, r, p, maxmem: 256 * N * r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

export interface CredentialParams {
  logN: number;
  r: number;
  p: number;
}

export async function hashDeviceCredential(
  password: string,
  params: CredentialParams = DEFAULT,
): Promise<string> {
  if (typeof password !== 'string' || password.length === 0 || password.length > MAX_PASSWORD) {
    throw new TypeError('password must be a non-empty string of at most 1024 characters');
  }
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, params.logN, params.r, params.p);
  return [
    'scrypt',
    params.logN,
    params.r,
    params.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

const FORMAT =
  /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/;

/** Whether a string has the hash format (for checking uploads). */
export function isDeviceCredentialHash(hash: string): boolean {
  const m = FORMAT.exec(hash);
  return (
    m !== null && Number(m[1]) >= 10 && Number(m[1]) <= 20 && Number(m[2]) >= 1 && Number(m[3]) >= 1
  );
}

/**
 * Constant-time in the password (the comparison is timingSafeEqual over the derived
 * key). A malformed hash verifies nothing. Never throws for a wrong password.
 */
export async function verifyDeviceCredential(password: string, hash: string): Promise<boolean> {
  const m = FORMAT.exec(hash);
  if (
    m === null ||
    !isDeviceCredentialHash(hash) ||
    typeof password !== 'string' ||
    password.length > MAX_PASSWORD
  ) {
    return false;
  }
  const expected = Buffer.from(m[5]!, 'base64url');
  const key = await scryptAsync(
    password,
    Buffer.from(m[4]!, 'base64url'),
    Number(m[1]),
    Number(m[2]),
    Number(m[3]),
  );
  return expected.length === key.length && timingSafeEqual(expected, key);
}
