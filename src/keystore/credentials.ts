/**
 * Device credentials. The owner's CLI generates a device password, uploads only
 * `hashDeviceCredential(password, address)`; the IMAP proxy checks a login with
 * `matchDeviceCredential`. scrypt from node:crypto (memory-hard, no native add-on).
 * Format: `scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>`.
 *
 * The gateway accepts exactly the parameters it publishes (`DEVICE_CREDENTIAL_PARAMS`)
 * and, for uploads, exactly the account's salt (`accountCredentialSalt`): a hash with
 * owner-chosen parameters would let four wrong logins allocate gigabytes, and one salt
 * per account lets a login derive one key, whatever the number of devices, and compare
 * it with every device's hash, so the time taken does not tell how many devices the
 * account has (docs/threat-model.md, Limits). Device passwords are generated (high
 * entropy), so sharing the salt among one account's devices costs nothing.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { normaliseAddress } from './validate.js';

const KEY_LENGTH = 32;
const MAX_PASSWORD = 1024;

export interface CredentialParams {
  logN: number;
  r: number;
  p: number;
}

/**
 * 2^14 × 8 × 128 B = 16 MiB, ~50 ms: device passwords are generated (high entropy), so
 * this guards a stolen hash list without making every IMAP login expensive.
 */
export const DEVICE_CREDENTIAL_PARAMS: Readonly<CredentialParams> = Object.freeze({
  logN: 14,
  r: 8,
  p: 1,
});

function scryptAsync(password: string, salt: Buffer): Promise<Buffer> {
  const { logN, r, p } = DEVICE_CREDENTIAL_PARAMS;
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

/**
 * The salt every device hash of `address` uses: derived from the normalised address,
 * so the owner's CLI and the gateway agree without asking each other. A string that is
 * no address still gets a salt (an unknown login costs the same derivation).
 */
export function accountCredentialSalt(address: string): Buffer {
  let account: string;
  try {
    account = normaliseAddress(address);
  } catch {
    account = String(address).trim().toLowerCase();
  }
  return createHash('sha256')
    .update(`recrypt device credential\u0000${account}`, 'utf8')
    .digest()
    .subarray(0, 16);
}

/**
 * The hash of a device password. With `address`, salted with the account's salt (what
 * the gateway accepts at upload); without, a random salt (still verified, at one more
 * derivation per such device).
 */
export async function hashDeviceCredential(password: string, address?: string): Promise<string> {
  if (typeof password !== 'string' || password.length === 0 || password.length > MAX_PASSWORD) {
    throw new TypeError('password must be a non-empty string of at most 1024 characters');
  }
  const salt = address === undefined ? randomBytes(16) : accountCredentialSalt(address);
  const key = await scryptAsync(password, salt);
  const { logN, r, p } = DEVICE_CREDENTIAL_PARAMS;
  return ['scrypt', logN, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

const FORMAT =
  /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/;

interface ParsedHash {
  salt: string;
  key: Buffer;
}

function parseHash(hash: unknown): ParsedHash | null {
  if (typeof hash !== 'string') return null;
  const m = FORMAT.exec(hash);
  if (m === null) return null;
  const { logN, r, p } = DEVICE_CREDENTIAL_PARAMS;
  if (Number(m[1]) !== logN || Number(m[2]) !== r || Number(m[3]) !== p) return null;
  return { salt: m[4]!, key: Buffer.from(m[5]!, 'base64url') };
}

/** Whether a string is a hash with the published parameters (any salt). */
export function isDeviceCredentialHash(hash: string): boolean {
  return parseHash(hash) !== null;
}

/**
 * Why the gateway refuses `hash` as an upload for `address`, or null when it accepts it:
 * the published parameters and the account's salt, nothing else.
 */
export function deviceCredentialUploadProblem(hash: string, address: string): string | null {
  const parsed = parseHash(hash);
  if (parsed === null) {
    const { logN, r, p } = DEVICE_CREDENTIAL_PARAMS;
    return `not a device credential hash (scrypt, log2 N ${logN}, r ${r}, p ${p})`;
  }
  if (parsed.salt !== accountCredentialSalt(address).toString('base64url')) {
    return "not salted with the account's credential salt";
  }
  return null;
}

export interface CredentialMatch {
  /** Index in `hashes` of the hash the password matches; -1 for none. */
  index: number;
  /** scrypt derivations made: one per distinct salt, the account's always among them. */
  derivations: number;
}

/**
 * Which of `hashes` (one account's devices) `password` matches. One derivation per
 * distinct salt, the account's salt always derived (so an account with no devices costs
 * the same as one with many), every hash compared in constant time, no early exit.
 * Malformed hashes and wrong passwords match nothing; it never throws for them.
 */
export async function matchDeviceCredential(
  password: string,
  address: string,
  hashes: readonly string[],
): Promise<CredentialMatch> {
  const usable = typeof password === 'string' && password.length <= MAX_PASSWORD;
  const secret = usable ? password : '';
  const parsed = hashes.map(parseHash);
  const salts = new Set([accountCredentialSalt(address).toString('base64url')]);
  for (const entry of parsed) if (entry !== null) salts.add(entry.salt);
  const derived = new Map<string, Buffer>();
  for (const salt of salts) {
    derived.set(salt, await scryptAsync(secret, Buffer.from(salt, 'base64url')));
  }
  let index = -1;
  parsed.forEach((entry, i) => {
    if (entry === null) return;
    const key = derived.get(entry.salt)!;
    const equal = key.length === entry.key.length && timingSafeEqual(key, entry.key);
    if (equal && usable && index === -1) index = i;
  });
  return { index, derivations: derived.size };
}

/**
 * Constant-time in the password (the comparison is timingSafeEqual over the derived
 * key). A malformed hash verifies nothing. Never throws for a wrong password.
 */
export async function verifyDeviceCredential(password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (parsed === null || typeof password !== 'string' || password.length > MAX_PASSWORD) {
    return false;
  }
  const key = await scryptAsync(password, Buffer.from(parsed.salt, 'base64url'));
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}
