/**
 * The owner key file (scrypt + AES-256-GCM): it round-trips the secrets; a wrong
 * passphrase, any altered byte (readable fields included) and malformed files are refused
 * with OwnerError codes; it never lands half-written and never replaces an existing file.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  OwnerError,
  commitTemp,
  decodeOwnerKeyFile,
  encodeOwnerKeyFile,
  readOwnerKeyFile,
  readOwnerPublicInfo,
  writeTemp,
  type OwnerKey,
} from '../../src/owner/index.js';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../../src/recrypt/index.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-owner-');
afterAll(() => dir.remove());

async function makeKey(): Promise<OwnerKey> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const groupSecret = randomScalar();
  const groupCertificate = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(groupSecret),
    address: 'owner@example.org',
    now,
  });
  return {
    address: 'owner@example.org',
    gateway: 'https://127.0.0.1:8443',
    gatewayCa: null,
    ownerCaSecret: ca.secret,
    groupSecret,
    ownerCaCertificate: ca.certificate,
    groupCertificate,
  };
}

async function codeOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    if (error instanceof OwnerError) return error.code;
    throw error;
  }
  return 'accepted';
}

describe('owner key file', async () => {
  const key = await makeKey();
  const text = await encodeOwnerKeyFile(key, 'pass phrase');
  const json = JSON.parse(text) as Record<string, unknown>;

  it('round-trips the former groups a rotation keeps, and holds none of them in the clear', async () => {
    const older = await makeKey();
    const rotated = {
      ...key,
      formerGroups: [{ groupSecret: older.groupSecret, groupCertificate: older.groupCertificate }],
    };
    const rotatedText = await encodeOwnerKeyFile(rotated, 'pass phrase');
    expect(await decodeOwnerKeyFile(rotatedText, 'pass phrase')).toEqual(rotated);
    const hex = older.groupSecret.toString(16).padStart(64, '0');
    expect(rotatedText).not.toContain(hex);
    expect(rotatedText).not.toContain(Buffer.from(hex, 'hex').toString('base64'));
  });

  it('round-trips every secret and holds none of them in the clear', async () => {
    expect(await decodeOwnerKeyFile(text, 'pass phrase')).toEqual(key);
    for (const secret of [key.ownerCaSecret, key.groupSecret]) {
      const hex = secret.toString(16).padStart(64, '0');
      expect(text).not.toContain(hex);
      expect(text).not.toContain(Buffer.from(hex, 'hex').toString('base64'));
    }
    expect(json).toMatchObject({
      format: 'recrypt-owner-key',
      version: 1,
      cipher: 'aes-256-gcm',
      kdf: { name: 'scrypt', logN: 17, r: 8, p: 1 },
    });
    // A fresh salt and iv each time.
    const again = JSON.parse(await encodeOwnerKeyFile(key, 'pass phrase')) as Record<
      string,
      unknown
    >;
    expect(again['salt']).not.toBe(json['salt']);
    expect(again['iv']).not.toBe(json['iv']);
  });

  it('refuses a wrong passphrase', async () => {
    expect(await codeOf(() => decodeOwnerKeyFile(text, 'pass phrasE'))).toBe('bad-passphrase');
    expect(await codeOf(() => decodeOwnerKeyFile(text, ''))).toBe('no-secret');
  });

  it('refuses a file whose readable fields or ciphertext were altered', async () => {
    const altered = [
      { ...json, address: 'mallory@example.org' },
      { ...json, gateway: 'https://evil.example' },
      { ...json, gatewayCa: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' },
      { ...json, tag: Buffer.alloc(16).toString('base64') },
      {
        ...json,
        ciphertext: Buffer.from(String(json['ciphertext']), 'base64').reverse().toString('base64'),
      },
    ];
    for (const variant of altered) {
      expect(await codeOf(() => decodeOwnerKeyFile(JSON.stringify(variant), 'pass phrase'))).toBe(
        'bad-passphrase',
      );
    }
  });

  it('refuses malformed files as corrupt, before any expensive work', async () => {
    const malformed = [
      'not json',
      '[]',
      JSON.stringify({ ...json, version: 2 }),
      JSON.stringify({ ...json, format: 'other' }),
      JSON.stringify({ ...json, kdf: { name: 'scrypt', logN: 40, r: 8, p: 1 } }),
      JSON.stringify({ ...json, kdf: { name: 'pbkdf2', logN: 17, r: 8, p: 1 } }),
      JSON.stringify({ ...json, iv: Buffer.alloc(4).toString('base64') }),
      JSON.stringify({ ...json, extra: true }),
    ];
    for (const text of malformed)
      expect(await codeOf(() => decodeOwnerKeyFile(text, 'pass phrase')), text.slice(0, 40)).toBe(
        'corrupt-key-file',
      );
  });

  it('is written whole, 0600, and never over an existing file', async () => {
    const path = join(dir.path, 'owner.key');
    const temp = writeTemp(path, text);
    expect(readdirSync(dir.path)).toEqual([expect.stringMatching(/^\.owner\.key\.tmp-/)]);
    commitTemp(temp, path);
    expect(readdirSync(dir.path)).toEqual(['owner.key']);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readOwnerPublicInfo(path)).toEqual({
      address: key.address,
      gateway: key.gateway,
      gatewayCa: null,
    });
    expect((await readOwnerKeyFile(path, 'pass phrase')).groupSecret).toBe(key.groupSecret);

    const second = writeTemp(path, 'other');
    expect(await codeOf(async () => commitTemp(second, path))).toBe('exists');
    expect(readFileSync(path, 'utf8')).toBe(text);
    writeFileSync(join(dir.path, 'empty.key'), '');
    expect(await codeOf(() => readOwnerKeyFile(join(dir.path, 'empty.key'), 'x'))).toBe(
      'corrupt-key-file',
    );
    expect(await codeOf(() => readOwnerKeyFile(join(dir.path, 'none.key'), 'x'))).toBe(
      'key-file-missing',
    );
  });
});
