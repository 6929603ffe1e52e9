/**
 * The at-rest encryption of the bridge's cache (README.md, "Cache at rest"): every file
 * the bridge writes under its data directory, except the key parameters, is
 * `RBS1 ‖ nonce(12) ‖ AES-256-GCM(ciphertext) ‖ tag(16)` with the file's logical name as
 * associated data, so that a file copied over another (one message's over another's, the
 * state over a message) fails to open instead of being read as the wrong thing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/atomic-file.js';
import { BridgeError } from './errors.js';

const MAGIC = Buffer.from('RBS1', 'latin1');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export function seal(key: Uint8Array, name: string, plain: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([MAGIC, nonce, body, cipher.getAuthTag()]);
}

/** The plaintext, or null when the key is wrong or the bytes were altered or belong elsewhere. */
export function unseal(key: Uint8Array, name: string, sealed: Uint8Array): Buffer | null {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (bytes.length < MAGIC.length + NONCE_BYTES + TAG_BYTES) return null;
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const nonce = bytes.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const body = bytes.subarray(MAGIC.length + NONCE_BYTES, bytes.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(Buffer.from(name, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return null;
  }
}

/** Sealed, then written atomically (a crash leaves the old file or the new one). */
export function writeSealed(path: string, key: Uint8Array, name: string, plain: Uint8Array): void {
  writeFileAtomic(path, seal(key, name, plain), 0o600);
}

/** The bytes seal() adds to a plaintext: magic, nonce, tag. */
export const SEALED_OVERHEAD = MAGIC.length + NONCE_BYTES + TAG_BYTES;

/**
 * Sealed, written to a temporary file and renamed over `path`, without fsync: a killed
 * process leaves the old file or the new one, but after a power loss the file may be
 * missing or short. For the cache's message files only, which the cache checks after an
 * unclean stop (cache.ts) and the sync fetches again: an fsync per message made most of
 * a first sync's time.
 */
export function writeSealedUnsynced(
  path: string,
  key: Uint8Array,
  name: string,
  plain: Uint8Array,
): void {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, seal(key, name, plain), { mode: 0o600 });
  renameSync(temp, path);
}

/** The opened file; null when it does not exist. A file that does not open is an error. */
export function readSealed(path: string, key: Uint8Array, name: string): Buffer | null {
  let sealed: Buffer;
  try {
    sealed = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BridgeError(
      'corrupt-cache',
      `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  const plain = unseal(key, name, sealed);
  if (plain === null)
    throw new BridgeError('corrupt-cache', `${path} does not open with this cache key`);
  return plain;
}

export function removeFile(path: string): void {
  rmSync(path, { force: true });
}
