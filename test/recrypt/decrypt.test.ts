/**
 * decryptEnvelope / decryptMessage: every KDF hash and AES size openssl writes for ECDH
 * (X9.63 stdDH with SHA-1…512; AES-128/192/256 wrap and content), recrypted or not,
 * agree with `openssl cms -decrypt`; and the typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptEnvelope, decryptMessage } from '../../src/recrypt/decrypt.js';
import { recryptDer } from '../../src/recrypt/transform.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import {
  makeOpensslPki,
  opensslDecrypt,
  opensslEncrypt,
  type Party,
} from '../helpers/recrypt-openssl-pki.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys } from '../helpers/recrypt-keys.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let laptop: Party;
const original = fixtureMessages().find((m) => m.name === 'multipart.eml')!.bytes;
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

beforeAll(() => {
  dir = tempDir('recrypt-decrypt-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
});
afterAll(() => dir?.remove());

const codeOf = (run: () => unknown): string | undefined => {
  try {
    run();
    return undefined;
  } catch (error) {
    return error instanceof RecryptError ? error.code : 'untyped';
  }
};

describe('openssl-made envelopes of every KDF and AES size', () => {
  it.each([
    ['aes128', 'sha1'],
    ['aes192', 'sha224'],
    ['aes256', 'sha384'],
    ['aes256', 'sha512'],
    ['aes-256-gcm', 'sha256'],
  ] as const)('%s content, %s KDF: decrypts, recrypts, and the device reads it', (cipher, kdf) => {
    const stored = new Uint8Array(opensslEncrypt(dir.path, original, [group], { cipher, kdf }));
    expect(same(decryptEnvelope(stored, group), original)).toBe(true);
    // the transform does not care which KDF: rk·E gives the device the same shared x
    const recrypted = recryptDer(stored, deviceKeys(group, laptop));
    const oracle = opensslDecrypt(dir.path, recrypted, laptop, 'DER');
    expect(oracle.stderr).toBe('');
    expect(same(oracle.output, original)).toBe(true);
    expect(same(decryptEnvelope(recrypted, laptop), original)).toBe(true);
    expect(codeOf(() => decryptEnvelope(recrypted, group))).toBe('decrypt-failed');
  });
});

describe('typed errors', () => {
  it('names the failure', () => {
    const smime = wrapMessage(original, group.certPem);
    expect(codeOf(() => decryptMessage(smime, laptop))).toBe('decrypt-failed');
    expect(codeOf(() => decryptMessage(original, group))).toBe('unsupported');
    expect(codeOf(() => decryptEnvelope(Uint8Array.of(0x30, 0x03, 0x06, 0x01, 0x00), group))).toBe(
      'unsupported',
    );
    expect(codeOf(() => decryptEnvelope(Uint8Array.of(0x30, 0x80), group))).toBe('malformed-der');
    expect(codeOf(() => decryptEnvelope(new Uint8Array(0), group))).toBe('malformed-der');
    expect(
      codeOf(() => decryptMessage(smime, { secret: 0n, recipientId: group.recipientId })),
    ).toBe('invalid-scalar');
    // a wrong secret under the right name: the unwrap fails
    expect(
      codeOf(() =>
        decryptMessage(smime, { secret: laptop.secret, recipientId: group.recipientId }),
      ),
    ).toBe('decrypt-failed');
  });
});
