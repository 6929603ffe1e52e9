/**
 * ES256 verification (RFC 7515 A.3, RFC 7518 §3.4) through node:crypto: `verifyEs256`
 * must accept and refuse exactly what the pure-JS @noble/curves verifier it replaced does
 * (kept below as the reference), on the RFC's own example, its low-S twin, the stored
 * profile vector, and signatures and keys broken in each way the format allows.
 */
import { createPrivateKey, sign as nodeSign } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type * as NobleNist from '@noble/curves/nist.js';
import { decodeCompactJws, pointOfJwk, verifyEs256 } from '../../src/profiles/jws.js';
import { ProfileError } from '../../src/profiles/index.js';
import { vectorJson, vectorText } from '../helpers/profiles-vectors.js';

// What this file guards against is CPU time: pure-JS ECDSA verification (milliseconds a
// call) on the one event loop that serves every listener. A test may not time it, so the
// module src/ imports gets a p256.verify that throws (a real part cannot show the fault);
// the reference verifier below uses the real module.
vi.mock('@noble/curves/nist.js', async (importOriginal) => {
  const actual = await importOriginal<typeof NobleNist>();
  const verify = (): never => {
    throw new Error('pure-JS ECDSA verification called');
  };
  return { ...actual, p256: { ...actual.p256, verify } };
});
const { p256 } = await vi.importActual<typeof NobleNist>('@noble/curves/nist.js');

/** The verifier verifyEs256 replaced, unchanged: the reference it must agree with. */
function nobleVerifies(input: Uint8Array, signature: Uint8Array, point: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return p256.verify(signature, input, point, { prehash: true, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

const N = p256.Point.Fn.ORDER;
const P = p256.Point.Fp.ORDER;
const bytes32 = (value: bigint): Uint8Array =>
  new Uint8Array(Buffer.from(value.toString(16).padStart(64, '0'), 'hex'));
const bigintOf = (data: Uint8Array): bigint => BigInt(`0x${Buffer.from(data).toString('hex')}`);
const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const withBitFlipped = (data: Uint8Array, bit: number): Uint8Array => {
  const copy = new Uint8Array(data);
  copy[bit >> 3]! ^= 0x80 >> (bit & 7);
  return copy;
};
/** The same (r, s) with s replaced by n − s: the other signature of the same r. */
const otherS = (signature: Uint8Array): Uint8Array =>
  concat(signature.subarray(0, 32), bytes32(N - bigintOf(signature.subarray(32))));

const a3 = vectorJson<{ jwk: { x: string; y: string }; jws: string }>('rfc7515-a3-es256.json');
const a3Jws = decodeCompactJws(a3.jws);
const a3Point = pointOfJwk({ kty: 'EC', crv: 'P-256', ...a3.jwk });
const a3Input = a3Jws.signingInput;
const a3Signature = a3Jws.signature;

const profileJws = decodeCompactJws(vectorText('profile.jws'));
const ownerPoint = pointOfJwk(profileJws.header['jwk']);

/** The point of smallest x on P-256, and the same point with x written as x + p (< 2^256). */
function smallXPoint(): { point: Uint8Array; xPlusP: Uint8Array } {
  const { Fp } = p256.Point;
  const { a, b } = p256.Point.CURVE();
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.add(Fp.mul(Fp.sqr(x), x), Fp.mul(a, x)), b);
    let y: bigint;
    try {
      y = Fp.sqrt(rhs);
    } catch {
      continue;
    }
    if (Fp.sqr(y) !== rhs) continue;
    return {
      point: concat(new Uint8Array([4]), bytes32(x), bytes32(y)),
      xPlusP: concat(new Uint8Array([4]), bytes32(x + P), bytes32(y)),
    };
  }
}

describe('the RFC 7515 A.3 example and the stored profile', () => {
  it('is high-S, so a verifier that demanded low S would refuse the RFC itself', () => {
    expect(bigintOf(a3Signature.subarray(32)) > N / 2n).toBe(true);
  });

  const offCurve = new Uint8Array(a3Point);
  offCurve[64]! ^= 1;
  const { point: smallX, xPlusP } = smallXPoint();
  const cases: [string, Uint8Array, Uint8Array, Uint8Array, boolean][] = [
    ['as published (high S)', a3Input, a3Signature, a3Point, true],
    ['with s replaced by n − s (low S)', a3Input, otherS(a3Signature), a3Point, true],
    [
      'the stored profile (low S, RFC 6979)',
      profileJws.signingInput,
      profileJws.signature,
      ownerPoint,
      true,
    ],
    [
      'the stored profile with high S',
      profileJws.signingInput,
      otherS(profileJws.signature),
      ownerPoint,
      true,
    ],
    ['first bit of r flipped', a3Input, withBitFlipped(a3Signature, 0), a3Point, false],
    ['last bit of r flipped', a3Input, withBitFlipped(a3Signature, 255), a3Point, false],
    ['first bit of s flipped', a3Input, withBitFlipped(a3Signature, 256), a3Point, false],
    ['last bit of s flipped', a3Input, withBitFlipped(a3Signature, 511), a3Point, false],
    [
      'one bit of the signing input flipped',
      withBitFlipped(a3Input, 100),
      a3Signature,
      a3Point,
      false,
    ],
    ['63 bytes', a3Input, a3Signature.subarray(1), a3Point, false],
    ['65 bytes', a3Input, concat(new Uint8Array([0]), a3Signature), a3Point, false],
    ['empty', a3Input, new Uint8Array(0), a3Point, false],
    [
      'DER instead of r||s',
      a3Input,
      p256.Signature.fromBytes(a3Signature, 'compact').toBytes('der'),
      a3Point,
      false,
    ],
    ['r = 0', a3Input, concat(bytes32(0n), a3Signature.subarray(32)), a3Point, false],
    ['s = 0', a3Input, concat(a3Signature.subarray(0, 32), bytes32(0n)), a3Point, false],
    ['r = n', a3Input, concat(bytes32(N), a3Signature.subarray(32)), a3Point, false],
    ['s = n', a3Input, concat(a3Signature.subarray(0, 32), bytes32(N)), a3Point, false],
    ['all bytes 0xff', a3Input, new Uint8Array(64).fill(0xff), a3Point, false],
    ['under another key (the stored owner key)', a3Input, a3Signature, ownerPoint, false],
    ['under a point off the curve', a3Input, a3Signature, offCurve, false],
    ['under a point with x written as x + p', a3Input, a3Signature, xPlusP, false],
    ['under the valid point of smallest x', a3Input, a3Signature, smallX, false],
    [
      'under the point at infinity written as zeros',
      a3Input,
      a3Signature,
      concat(new Uint8Array([4]), new Uint8Array(64)),
      false,
    ],
  ];

  it.each(cases)(
    '%s: node:crypto and the reference agree',
    (_name, input, signature, point, expected) => {
      expect(nobleVerifies(input, signature, point)).toBe(expected);
      expect(verifyEs256(input, signature, point)).toBe(expected);
    },
  );

  it.each([
    ['off the curve', offCurve],
    ['with x written as x + p', xPlusP],
  ])('a header key %s is refused before any signature check', (_name, point) => {
    const jwk = {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(point.subarray(1, 33)).toString('base64url'),
      y: Buffer.from(point.subarray(33)).toString('base64url'),
    };
    expect(() => pointOfJwk(jwk)).toThrow(
      new ProfileError('malformed', 'header jwk: not a point on P-256'),
    );
  });
});

describe('any key, message and signer', () => {
  const secret = fc
    .uint8Array({ minLength: 32, maxLength: 32 })
    .filter((bytes) => p256.utils.isValidSecretKey(bytes));

  /** node:crypto signs with a random k, so half of its signatures are high-S. */
  function opensslSign(message: Uint8Array, key: Uint8Array, point: Uint8Array): Uint8Array {
    const b64 = (data: Uint8Array): string => Buffer.from(data).toString('base64url');
    const privateKey = createPrivateKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: b64(key),
        x: b64(point.subarray(1, 33)),
        y: b64(point.subarray(33)),
      },
      format: 'jwk',
    });
    return new Uint8Array(
      nodeSign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    );
  }

  it('verify alike: signed by noble (RFC 6979) or OpenSSL, intact or with one bit flipped', () => {
    fc.assert(
      fc.property(
        secret,
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.constantFrom('noble', 'openssl'),
        fc.constantFrom('intact', 'signature', 'message'),
        fc.nat(),
        (key, message, signer, change, bit) => {
          const point = p256.getPublicKey(key, false);
          const signature =
            signer === 'noble'
              ? p256.sign(message, key, { prehash: true, format: 'compact' })
              : opensslSign(message, key, point);
          const input =
            change === 'message' ? withBitFlipped(message, bit % (message.length * 8)) : message;
          const signed = change === 'signature' ? withBitFlipped(signature, bit % 512) : signature;
          const expected = change === 'intact';
          expect(nobleVerifies(input, signed, point)).toBe(expected);
          expect(verifyEs256(input, signed, point)).toBe(expected);
        },
      ),
      { numRuns: 40 },
    );
  });
});
