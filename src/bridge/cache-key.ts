/**
 * The cache key: scrypt of the bridge passphrase with a random salt (README.md, "Cache at
 * rest"). `key.json` keeps the salt, the scrypt cost and a sealed check value, so a wrong
 * passphrase is told apart from a damaged cache and opens nothing. The passphrase itself
 * is never stored. With the OS keyring (keyring.ts, `recrypt bridge --keyring`) the key is
 * kept there once the passphrase gave it, and later starts take it from there.
 */
import { randomBytes, scrypt as scryptCallback, type ScryptOptions } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../config/atomic-file.js';
import { BridgeError } from './errors.js';
import { KeyringUnavailableError, type Keyring } from './keyring.js';
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
  if (!opens(file, key))
    throw new BridgeError('bad-passphrase', 'wrong bridge passphrase (the cache does not open)');
  return key;
}

function opens(file: KeyFile, key: Buffer): boolean {
  const check = unseal(key, CHECK_NAME, Buffer.from(file.check, 'base64'));
  return check !== null && check.equals(CHECK_TEXT);
}

export interface CacheKeySources {
  /** The passphrase, or how to ask for it: asked only when the keyring gives no key. */
  passphrase: string | (() => Promise<string>);
  keyring?: Keyring;
  cost?: { N: number; r: number; p: number };
  /** Told why the keyring was not used (a person reads it: no secret in it). */
  warn(message: string): void;
}

/**
 * The cache key of `path`, from the keyring when it holds one that opens the cache, else
 * from the passphrase; with a keyring, a key the passphrase gave is stored there for the
 * next start. A keyring that is missing or does not answer is said through `warn` and the
 * passphrase is used: the keyring only saves typing it, the key stays `scrypt(passphrase)`.
 */
export async function openCacheKeyWith(path: string, sources: CacheKeySources): Promise<Buffer> {
  const passphrase = async (): Promise<string> =>
    typeof sources.passphrase === 'string' ? sources.passphrase : sources.passphrase();
  const keyring = sources.keyring;
  if (keyring === undefined) return openCacheKey(path, await passphrase(), sources.cost);
  // One entry per data directory: several bridges may run for several accounts.
  const account = resolve(path);
  let available = true;
  if (existsSync(path)) {
    try {
      const stored = await keyring.lookup(account);
      if (stored !== null) {
        const key = Buffer.from(stored.trim(), 'base64');
        if (key.length === 32 && opens(parseKeyFile(path), key)) return key;
        sources.warn(
          `the key in ${keyring.name} does not open this cache (it was made again?); using the bridge passphrase`,
        );
      }
    } catch (error) {
      if (!(error instanceof KeyringUnavailableError)) throw error;
      available = false;
      sources.warn(
        `the OS keyring is not available (${keyring.name}: ${error.message}); using the bridge passphrase`,
      );
    }
  }
  const key = await openCacheKey(path, await passphrase(), sources.cost);
  if (available) {
    try {
      await keyring.store(account, `recrypt bridge cache key (${account})`, key.toString('base64'));
    } catch (error) {
      if (!(error instanceof KeyringUnavailableError)) throw error;
      sources.warn(
        `the cache key could not be stored in ${keyring.name} (${error.message}); the next start asks for the passphrase again`,
      );
    }
  }
  return key;
}
