import { hkdfSync } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GATEWAY_KEY_FILE,
  GatewayKey,
  KeyStoreError,
  loadOrCreateGatewayKey,
  unwrapRecryptionKey,
  wrapRecryptionKey,
} from '../../src/keystore/index.js';
import { tempDir } from '../helpers/tmp.js';
import { randomRecipientIdHex, randomScalar } from './fixtures.js';

const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

function dataDir(): string {
  const dir = tempDir('recrypt-gwkey-');
  dirs.push(dir);
  return dir.path;
}

function expectCorrupt(fn: () => unknown): void {
  let error: unknown = null;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(KeyStoreError);
  expect((error as KeyStoreError).code).toBe('corrupt');
}

describe('gateway key file', () => {
  it('is created once with mode 0600 and 32 bytes, then read back', () => {
    const dir = dataDir();
    const first = loadOrCreateGatewayKey(dir);
    const path = join(dir, GATEWAY_KEY_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path)).toHaveLength(32);
    const second = loadOrCreateGatewayKey(dir);
    const binding = { groupId: randomRecipientIdHex(), targetId: randomRecipientIdHex() };
    const rk = randomScalar();
    expect(unwrapRecryptionKey(second, wrapRecryptionKey(first, rk, binding), binding)).toBe(rk);
  });

  it('refuses a key file others can read, or of the wrong size', () => {
    const dir = dataDir();
    loadOrCreateGatewayKey(dir);
    chmodSync(join(dir, GATEWAY_KEY_FILE), 0o644);
    expectCorrupt(() => loadOrCreateGatewayKey(dir));
    const other = dataDir();
    writeFileSync(join(other, GATEWAY_KEY_FILE), Buffer.alloc(16), { mode: 0o600 });
    expectCorrupt(() => loadOrCreateGatewayKey(other));
  });

  it('derives per-purpose secrets: the same in every process sharing the file, apart per label', () => {
    const dir = dataDir();
    const first = loadOrCreateGatewayKey(dir);
    const second = loadOrCreateGatewayKey(dir);
    const secret = first.deriveSecret('list-unsubscribe-confirmation');
    expect(second.deriveSecret('list-unsubscribe-confirmation')).toBe(secret);
    expect(first.deriveSecret('another-purpose')).not.toBe(secret);
    expect(GatewayKey.generate().deriveSecret('list-unsubscribe-confirmation')).not.toBe(secret);
    // RFC 5869 HKDF-SHA256 over the key file's bytes, so other tools can check it.
    const expected = Buffer.from(
      hkdfSync(
        'sha256',
        readFileSync(join(dir, GATEWAY_KEY_FILE)),
        '',
        'recrypt/list-unsubscribe-confirmation',
        32,
      ),
    ).toString('base64url');
    expect(secret).toBe(expected);
  });

  it('never shows its bytes in logs or JSON', () => {
    const key = GatewayKey.generate();
    expect(JSON.stringify({ key })).toBe('{"key":"[GatewayKey]"}');
    expect(inspect(key)).toBe('[GatewayKey]');
  });
});

describe('wrapped recryption keys', () => {
  const key = GatewayKey.generate();
  const binding = { groupId: randomRecipientIdHex(), targetId: randomRecipientIdHex() };

  it('round-trip, with a fresh nonce each time', () => {
    const rk = randomScalar();
    const a = wrapRecryptionKey(key, rk, binding);
    const b = wrapRecryptionKey(key, rk, binding);
    expect(a).toHaveLength(61);
    expect(a.equals(b)).toBe(false);
    expect(unwrapRecryptionKey(key, a, binding)).toBe(rk);
  });

  it('do not unwrap under another key, on another record, or when altered', () => {
    const wrapped = wrapRecryptionKey(key, randomScalar(), binding);
    expectCorrupt(() => unwrapRecryptionKey(GatewayKey.generate(), wrapped, binding));
    expectCorrupt(() =>
      unwrapRecryptionKey(key, wrapped, { ...binding, targetId: randomRecipientIdHex() }),
    );
    expectCorrupt(() =>
      unwrapRecryptionKey(key, wrapped, { ...binding, groupId: randomRecipientIdHex() }),
    );
    // Swapping group and target must not work either.
    expectCorrupt(() =>
      unwrapRecryptionKey(key, wrapped, { groupId: binding.targetId, targetId: binding.groupId }),
    );
    for (let i = 0; i < wrapped.length; i++) {
      const altered = Buffer.from(wrapped);
      altered[i]! ^= 0x01;
      expectCorrupt(() => unwrapRecryptionKey(key, altered, binding));
    }
    expectCorrupt(() => unwrapRecryptionKey(key, wrapped.subarray(0, 60), binding));
  });

  it('refuse to wrap something that is not a scalar mod n', () => {
    for (const bad of [0n, -1n, 2n ** 256n]) {
      expect(() => wrapRecryptionKey(key, bad, binding)).toThrow(KeyStoreError);
    }
  });
});
