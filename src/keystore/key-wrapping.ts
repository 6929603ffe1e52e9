/**
 * Recryption keys at rest are wrapped with AES-256-GCM under the gateway key, a 32-byte
 * file in the gateway's data directory and never in the key store: a copy of Redis or of
 * the SQLite file alone yields no rk (an rk plus a stolen device key would give the
 * group key). The AAD binds each wrapped key to its record (group × target), so a
 * wrapped value copied onto another record does not unwrap.
 *
 * Wrapped form: version (1) ‖ nonce (12) ‖ ciphertext (32) ‖ tag (16) = 61 bytes.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Scalar } from '../recrypt/types.js';
import { KeyStoreError } from './errors.js';
import { bytesToScalar, checkScalar, scalarToBytes } from './validate.js';

export const GATEWAY_KEY_FILE = 'gateway.key';
const VERSION = 1;
const WRAPPED_LENGTH = 1 + 12 + 32 + 16;

// The key bytes live here, not on the object, so nothing outside this module (no log,
// no JSON, no stray property access) can reach them.
const keyBytes = new WeakMap<GatewayKey, Buffer>();

function bytesOf(key: GatewayKey): Buffer {
  const bytes = keyBytes.get(key);
  if (bytes === undefined) throw new TypeError('not a GatewayKey');
  return bytes;
}

/** The gateway key: 32 bytes that wrap every recryption key at rest. */
export class GatewayKey {
  private constructor(bytes: Buffer) {
    keyBytes.set(this, bytes);
  }

  static fromBytes(bytes: Uint8Array): GatewayKey {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
      throw new TypeError('gateway key must be 32 bytes');
    }
    return new GatewayKey(Buffer.from(bytes));
  }

  static generate(): GatewayKey {
    return new GatewayKey(randomBytes(32));
  }

  /**
   * A secret for another purpose, derived from this key and a label (HKDF-SHA256): every
   * gateway process that shares gateway.key derives the same one, and no purpose's secret
   * reveals another's or the key itself. Used where a secret must not be tied to one an
   * operator rotates for its own reasons (the admin token).
   */
  deriveSecret(label: string): string {
    return Buffer.from(hkdfSync('sha256', bytesOf(this), '', `recrypt/${label}`, 32)).toString(
      'base64url',
    );
  }

  toJSON(): string {
    return '[GatewayKey]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[GatewayKey]';
  }
}

/**
 * Reads `<dataDir>/gateway.key`, or creates it (mode 0600) when absent. Creation is
 * atomic and race-free across processes: the key is written to a temp file and then
 * hard-linked into place, which fails if another process got there first (rename would
 * silently replace its key); the loser reads the winner's key.
 */
export function loadOrCreateGatewayKey(dataDir: string): GatewayKey {
  const path = join(dataDir, GATEWAY_KEY_FILE);
  try {
    return readKeyFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(32));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temp);
  }
  const dir = openSync(dataDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return readKeyFile(path);
}

function readKeyFile(path: string): GatewayKey {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KeyStoreError(
      'corrupt',
      `${path} is readable by group or others (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  const bytes = readFileSync(path);
  if (bytes.length !== 32) throw new KeyStoreError('corrupt', `${path} must hold exactly 32 bytes`);
  return GatewayKey.fromBytes(bytes);
}

/** What a wrapped key is bound to: the group it reads and the device (or member group) it serves. */
export interface KeyBinding {
  groupId: string;
  targetId: string;
}

function aad(binding: KeyBinding): Buffer {
  return Buffer.from(`recrypt-rk-v1\0${binding.groupId}\0${binding.targetId}`);
}

export function wrapRecryptionKey(key: GatewayKey, rk: Scalar, binding: KeyBinding): Buffer {
  checkScalar(rk);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', bytesOf(key), nonce);
  cipher.setAAD(aad(binding));
  const body = Buffer.concat([cipher.update(scalarToBytes(rk)), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
}

/** `KeyStoreError('corrupt')` when the key, the binding or the bytes do not match. */
export function unwrapRecryptionKey(
  key: GatewayKey,
  wrapped: Uint8Array,
  binding: KeyBinding,
): Scalar {
  if (wrapped.length !== WRAPPED_LENGTH || wrapped[0] !== VERSION) {
    throw new KeyStoreError('corrupt', 'wrapped recryption key has the wrong form');
  }
  const buf = Buffer.from(wrapped);
  const decipher = createDecipheriv('aes-256-gcm', bytesOf(key), buf.subarray(1, 13));
  decipher.setAAD(aad(binding));
  decipher.setAuthTag(buf.subarray(45));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(buf.subarray(13, 45)), decipher.final()]);
  } catch {
    throw new KeyStoreError(
      'corrupt',
      'wrapped recryption key does not unwrap (other gateway key or moved record)',
    );
  }
  return checkScalar(bytesToScalar(plain));
}
