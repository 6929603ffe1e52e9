/**
 * RFC 7518 §3.4: an ES256 signature is r||s, 64 bytes. OpenSSL, an implementation no one
 * here wrote, checks it after conversion to the DER ECDSA-Sig-Value it expects, using the
 * public key it derives itself from the owner's PEM key file.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { buildProfile, signProfile } from '../../src/profiles/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';
import { vectorBytes, vectorPath, vectorSecret, vectorText } from '../helpers/profiles-vectors.js';

const run = promisify(execFile);
const openssl = requireBinary('openssl');
const dir = tempDir('profiles-openssl-');
afterAll(() => dir.remove());

/** r||s → DER SEQUENCE { INTEGER r, INTEGER s }, via noble's independent encoder. */
const derOf = (rs: Uint8Array): Uint8Array =>
  p256.Signature.fromBytes(rs, 'compact').toBytes('der');

async function opensslVerifies(jws: string, publicPem: string, tag: string): Promise<boolean> {
  const [h, p, s] = jws.split('.') as [string, string, string];
  const input = join(dir.path, `${tag}.input`);
  const signature = join(dir.path, `${tag}.sig`);
  writeFileSync(input, `${h}.${p}`);
  writeFileSync(signature, derOf(new Uint8Array(Buffer.from(s, 'base64url'))));
  try {
    const { stdout } = await run(openssl, [
      'dgst',
      '-sha256',
      '-verify',
      publicPem,
      '-signature',
      signature,
      input,
    ]);
    return stdout.includes('Verified OK');
  } catch {
    return false;
  }
}

async function publicPemOf(keyFile: string, tag: string): Promise<string> {
  const out = join(dir.path, `${tag}.pub.pem`);
  await run(openssl, ['pkey', '-in', vectorPath(keyFile), '-pubout', '-out', out]);
  return out;
}

describe('ES256 signatures checked by openssl dgst -verify', () => {
  it('accepts the stored vector under the owner key, and not under another key', async () => {
    const jws = vectorText('profile.jws');
    const [h, , s] = jws.split('.') as [string, string, string];
    expect(Buffer.from(s, 'base64url')).toHaveLength(64);
    expect(await opensslVerifies(jws, await publicPemOf('owner-key.pem', 'owner'), 'vector')).toBe(
      true,
    );
    expect(
      await opensslVerifies(jws, await publicPemOf('other-key.pem', 'other'), 'vector-other'),
    ).toBe(false);
    // The header's JWK is the owner key: the same x and y as the point ending openssl's SPKI.
    const { stdout: spki } = await run(
      openssl,
      ['pkey', '-in', vectorPath('owner-key.pem'), '-pubout', '-outform', 'DER'],
      {
        encoding: 'buffer',
      },
    );
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as {
      jwk: { x: string; y: string };
    };
    const point = spki.subarray(spki.length - 64);
    expect(header.jwk.x).toBe(point.subarray(0, 32).toString('base64url'));
    expect(header.jwk.y).toBe(point.subarray(32).toString('base64url'));
  });

  it('accepts a freshly signed profile and refuses it once its signing input changes', async () => {
    const secret = vectorSecret('owner-key.pem');
    const jws = signProfile(
      buildProfile({
        address: 'carol@example.org',
        name: 'Carol',
        ownerPublicKey: p256.getPublicKey(secret, false),
        groupCertificate: vectorBytes('group.cer'),
        require: 'encrypt',
        issued: new Date('2026-11-28T12:00:00Z'),
      }),
      secret,
    );
    const owner = await publicPemOf('owner-key.pem', 'fresh');
    expect(await opensslVerifies(jws, owner, 'fresh')).toBe(true);
    const [h, p, s] = jws.split('.') as [string, string, string];
    const flipped = `${h}.${p.slice(0, -2)}${p.at(-2) === 'A' ? 'B' : 'A'}${p.at(-1)}.${s}`;
    expect(await opensslVerifies(flipped, owner, 'flipped')).toBe(false);
  });
});
