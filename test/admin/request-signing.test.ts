import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  RequestSignatureError,
  canonicalRequest,
  parseSignatureHeader,
  signRequest,
  verifyRequestSignature,
} from '../../src/admin/request-signing.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = publicKey.export({ format: 'der', type: 'spki' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const now = 1_800_000_000_000;
const request = { method: 'POST', path: '/v1/devices', body: Buffer.from('{"name":"laptop"}') };
const parts = {
  ...request,
  address: 'alice@example.org',
  timestamp: now,
  nonce: randomBytes(16).toString('base64url'),
};

function reasonOf(run: () => void): string {
  try {
    run();
  } catch (error) {
    if (error instanceof RequestSignatureError) return error.reason;
    throw error;
  }
  return 'accepted';
}

describe('owner-signed admin requests', () => {
  it('verifies a request the owner signed', () => {
    const header = parseSignatureHeader(signRequest(parts, privateKey));
    expect(header.address).toBe('alice@example.org');
    expect(reasonOf(() => verifyRequestSignature(header, request, spki, now + 1000))).toBe(
      'accepted',
    );
  });

  it('is an ordinary ECDSA P-256 signature that openssl verifies', () => {
    const dir = tempDir();
    try {
      const header = parseSignatureHeader(signRequest(parts, privateKey));
      // IEEE P1363 r||s → DER for openssl.
      const r = header.signature.subarray(0, 32);
      const s = header.signature.subarray(32);
      const int = (v: Buffer) => {
        let b = v;
        while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
        if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
        return Buffer.concat([Buffer.from([0x02, b.length]), b]);
      };
      const seq = Buffer.concat([int(r), int(s)]);
      writeFileSync(
        join(dir.path, 'sig.der'),
        Buffer.concat([Buffer.from([0x30, seq.length]), seq]),
      );
      writeFileSync(join(dir.path, 'msg'), canonicalRequest(parts));
      writeFileSync(join(dir.path, 'pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
      const out = execFileSync(
        requireBinary('openssl'),
        ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.der', 'msg'],
        { cwd: dir.path, encoding: 'utf8' },
      );
      expect(out.trim()).toBe('Verified OK');
    } finally {
      dir.remove();
    }
  });

  it.each([
    ['another method', { ...request, method: 'DELETE' }],
    ['another path', { ...request, path: '/v1/devices/x/revoke' }],
    ['another body', { ...request, body: Buffer.from('{"name":"laptoq"}') }],
  ])('refuses a signature moved to %s', (_label, altered) => {
    const header = parseSignatureHeader(signRequest(parts, privateKey));
    expect(reasonOf(() => verifyRequestSignature(header, altered, spki, now))).toBe(
      'bad-signature',
    );
  });

  it('refuses another key, and a stale or future timestamp', () => {
    const forged = parseSignatureHeader(signRequest(parts, other.privateKey));
    expect(reasonOf(() => verifyRequestSignature(forged, request, spki, now))).toBe(
      'bad-signature',
    );
    const header = parseSignatureHeader(signRequest(parts, privateKey));
    expect(reasonOf(() => verifyRequestSignature(header, request, spki, now + 6 * 60_000))).toBe(
      'stale',
    );
    expect(reasonOf(() => verifyRequestSignature(header, request, spki, now - 6 * 60_000))).toBe(
      'stale',
    );
  });

  it.each([
    undefined,
    '',
    'garbage',
    'address=a;ts=1;nonce=short;sig=x',
    'address=%E0%A4%A;ts=1800000000000;nonce=AAAAAAAAAAAAAAAAAAAAAA;sig=' + 'A'.repeat(86),
    'x'.repeat(5000),
  ])('refuses malformed header %#', (value) => {
    expect(reasonOf(() => parseSignatureHeader(value))).toBe('malformed');
  });
});
