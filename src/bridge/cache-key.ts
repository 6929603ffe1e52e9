/**
 * The cache key: scrypt of the bridge passphrase with a random salt (README.md, "Cache at
 * rest"). `key.json` keeps the salt, the scrypt cost and a sealed check value, so a wrong
 * passphrase is told apart from a damaged cache and opens nothing. The passphrase itself
 * is never stored.
 */
import { randomBytes, scrypt as scryptCallback, type ScryptOptions } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/atomic-file.js';
import { BridgeError } from './errors.js';
import { seal, unseal } from './sealed-file.js';

/** N = 2^17, r = 8: about 128 MiB and a few hundred ms once per start, as OWASP advises for scrypt. */
const DEFAULT_COST = { N: 1 << 17, r: 8, p: 1 };
const CHECK_NAME = 'key-check';
const CHECK_TEXT = Buffer.from('recrypt bridge cache key', 'utf8');

interface KeyFile {
  version: 1;
  salt: string;
  N: number;
  r: number;
  p: number;
  check: string;
}

function derive(passphrase: string, salt: Buffer, cost: ScryptOptions): Promise<Buffer> {
  const N = cost.N ?? DEFAULT_COST.N;
  const r = cost.r ?? DEFAULT_COST.r;
  const maxmem = 128 * N * r * 2;
  return new Promise((resolve, reject) =>
    scryptCallback(passphrase, salt, 32, { ...cost, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

function parseKeyFile(path: string): KeyFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new BridgeError('corrupt-cache', `${path} is not a bridge key file`);
  }
  const file = parsed as Partial<KeyFile>;
  const ok =
    file.version === 1 &&
    typeof file.salt === 'string' &&
    typeof file.check === 'string' &&
    [file.N, file.r, file.p].every((n) => Number.isInteger(n) && (n as number) > 0) &&
    (file.N as number) <= 1 << 20 &&
    (file.r as number) <= 32 &&
    (file.p as number) <= 16;
  if (!ok) throw new BridgeError('corrupt-cache', `${path} is not a bridge key file`);
  return file as KeyFile;
}

/**
 * Opens the cache key of `path`, or makes one with a new salt when the file does not exist.
 * `cost` lowers scrypt's work factor for tests only.
 */
export async function openCacheKey(
  path: string,
  passphrase: string,
  cost: { N: number; r: number; p: number } = DEFAULT_COST,
): Promise<Buffer> {
  if (passphrase.length === 0)
    throw new BridgeError('invalid-argument', 'the bridge passphrase is empty');
  if (!existsSync(path)) {
    const salt = randomBytes(16);
    const key = await derive(passphrase, salt, cost);
    const file: KeyFile = {
      version: 1,
      salt: salt.toString('base64'),
      ...cost,
      check: seal(key, CHECK_NAME, CHECK_TEXT).toString('base64'),
    };
    writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n', 0o600);
    return key;
  }
  const file = parseKeyFile(path);
  const key = await derive(passphrase, Buffer.from(file.salt, 'base64'), {
    N: file.N,
    r: file.r,
    p: file.p,
  });
  const check = unseal(key, CHECK_NAME, Buffer.from(file.check, 'base64'));
  if (check === null || !check.equals(CHECK_TEXT))
    throw new BridgeError('bad-passphrase', 'wrong bridge passphrase (the cache does not open)');
  return key;
}
