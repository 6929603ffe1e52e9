/**
 * P-256 scalar and point math for recryption (docs/design.md §2): scalars mod n, recryption keys
 * `g·d⁻¹`, their composition, and the one operation the gateway performs on untrusted
 * input — multiplying a sender's point by a secret scalar — which always validates first.
 *
 * Two multiplication paths: @noble/curves (pure JS, the reference) and node:crypto
 * (OpenSSL's ECDH, much faster but it only returns the x-coordinate; see
 * `multiplyPointNode` for how y is recovered without trusting a guess).
 */
import { ECDH, createECDH, createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { RecryptError } from './errors.js';
import type { Scalar } from './types.js';

const Point = p256.Point;
const Fn = Point.Fn;
const Fp = Point.Fp;

/** n, the order of P-256's base point (the cofactor is 1: every curve point but ∞ has order n). */
export const CURVE_ORDER: bigint = Fn.ORDER;

/** Length of an uncompressed SEC1 point: 0x04 ‖ x ‖ y. */
export const POINT_LENGTH = 65;
/** Length of a scalar as big-endian bytes. */
export const SCALAR_LENGTH = 32;

function assertScalar(k: unknown, name: string): asserts k is Scalar {
  if (typeof k !== 'bigint') {
    throw new RecryptError('invalid-scalar', `${name} must be a bigint, got ${typeof k}`);
  }
  if (k <= 0n || k >= CURVE_ORDER) {
    throw new RecryptError('invalid-scalar', `${name} must lie in [1, n-1]`);
  }
}

function assertBytes(bytes: unknown, name: string, length?: number): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', `${name} must be a Uint8Array`);
  }
  if (length !== undefined && bytes.length !== length) {
    throw new RecryptError(
      'invalid-argument',
      `${name} must be ${length} bytes, got ${bytes.length}`,
    );
  }
}

/** Throws the typed error unless `k` is a scalar in [1, n-1]; `name` goes into the message. */
export function checkScalar(k: unknown, name = 'scalar'): Scalar {
  assertScalar(k, name);
  return k;
}

/** A uniformly random scalar in [1, n-1] (noble's randomSecretKey: reduction of 48 random bytes). */
export function randomScalar(): Scalar {
  return scalarFromBytes(p256.utils.randomSecretKey());
}

export function invertScalar(k: Scalar): Scalar {
  assertScalar(k, 'k');
  return Fn.inv(k);
}

export function multiplyScalars(a: Scalar, b: Scalar): Scalar {
  assertScalar(a, 'a');
  assertScalar(b, 'b');
  // n is prime and a, b ≠ 0, so the product is never 0.
  return Fn.mul(a, b);
}

/** rk = g·d⁻¹ mod n: turns a ciphertext for the group into one for the device. */
export function recryptionKey(groupSecret: Scalar, deviceSecret: Scalar): Scalar {
  assertScalar(groupSecret, 'groupSecret');
  assertScalar(deviceSecret, 'deviceSecret');
  return Fn.mul(groupSecret, Fn.inv(deviceSecret));
}

/** One key equal to recrypting with `a` then with `b` (scalar multiplication commutes). */
export function composeKeys(a: Scalar, b: Scalar): Scalar {
  assertScalar(a, 'a');
  assertScalar(b, 'b');
  return Fn.mul(a, b);
}

/** k·P as a 65-byte uncompressed point. */
export function publicPoint(k: Scalar): Uint8Array {
  assertScalar(k, 'k');
  return Point.BASE.multiply(k).toBytes(false);
}

/**
 * True only for a 65-byte uncompressed encoding of a point on P-256 other than ∞.
 * Compressed and hybrid encodings are refused: CMS originator keys here are always
 * uncompressed, and accepting other forms would change the length of a recrypted field.
 */
export function validatePoint(point: Uint8Array): boolean {
  if (!(point instanceof Uint8Array) || point.length !== POINT_LENGTH || point[0] !== 0x04) {
    return false;
  }
  try {
    // fromBytes checks x, y < p and y² = x³ + ax + b; ∞ has no uncompressed encoding.
    const decoded = Point.fromBytes(point);
    decoded.assertValidity();
    return !decoded.is0();
  } catch {
    return false;
  }
}

function assertPoint(point: unknown, name: string): asserts point is Uint8Array {
  assertBytes(point, name);
  if (!validatePoint(point)) {
    throw new RecryptError('invalid-point', `${name} is not an uncompressed P-256 point`);
  }
}

/** k·E for an untrusted point E; validates E first (invalid-curve attacks leak k otherwise). */
export function multiplyPoint(point: Uint8Array, k: Scalar): Uint8Array {
  assertPoint(point, 'point');
  assertScalar(k, 'k');
  return Point.fromBytes(point).multiply(k).toBytes(false);
}

export function scalarToBytes(k: Scalar): Uint8Array {
  assertScalar(k, 'k');
  return Fn.toBytes(k);
}

/** The JWK of the P-256 private key `secret` (with its public point), for key imports. */
export function privateJwk(secret: Scalar): JsonWebKey {
  const point = publicPoint(secret);
  return {
    kty: 'EC',
    crv: 'P-256',
    d: Buffer.from(scalarToBytes(secret)).toString('base64url'),
    x: Buffer.from(point.subarray(1, 33)).toString('base64url'),
    y: Buffer.from(point.subarray(33)).toString('base64url'),
  };
}

/** `secret` as a node:crypto private key (ECDSA signing, PKCS#8/PEM export). */
export function privateKeyObject(secret: Scalar): KeyObject {
  return createPrivateKey({ key: privateJwk(secret), format: 'jwk' });
}

/** A 32-byte big-endian scalar; refuses 0 and values ≥ n rather than reducing them. */
export function scalarFromBytes(bytes: Uint8Array): Scalar {
  assertBytes(bytes, 'bytes', SCALAR_LENGTH);
  let k = 0n;
  for (const byte of bytes) k = (k << 8n) | BigInt(byte);
  assertScalar(k, 'bytes');
  return k;
}

function bytesToField(bytes: Uint8Array): bigint {
  return Fp.fromBytes(bytes);
}

/**
 * k·E through OpenSSL (node:crypto ECDH), with the same validation as `multiplyPoint`.
 *
 * ECDH returns only x(k·E); both (x, y) and (x, −y) are on the curve. The sign is fixed
 * by one more ECDH on an auxiliary point: with K = k·P (OpenSSL computes it as the ECDH
 * public key) and x₂ = x(k·(E+P)) = x(k·E + K), only the right candidate Q satisfies
 * x(Q + K) = x₂. The wrong one, −Q, would need Q + K = ±(K − Q), i.e. 2Q = ∞ or 2K = ∞,
 * impossible in a group of odd prime order. The cost is two variable-base multiplications
 * and one fixed-base one in OpenSSL, plus a few field operations here. The degenerate
 * case E = ±P (E + P = ∞ or x-collisions with K) goes through noble instead.
 *
 * (A client's ECDH uses only x(d·E'), and x(d·(−Q)) = x(d·Q), so either root would
 * decrypt; the exact k·E is returned anyway so that both paths agree byte for byte and
 * the stored output does not depend on which path produced it.)
 */
export function multiplyPointNode(point: Uint8Array, k: Scalar): Uint8Array {
  assertPoint(point, 'point');
  assertScalar(k, 'k');
  const e = Point.fromBytes(point);
  if (Fp.eql(e.x, Point.BASE.x)) return e.multiply(k).toBytes(false);

  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Fn.toBytes(k));
  const kP = Point.fromBytes(ecdh.getPublicKey());
  const x1 = ecdh.computeSecret(point);
  const x2 = bytesToField(ecdh.computeSecret(affineSumWithBase(e)));

  // OpenSSL decompresses (0x02 ‖ x) to the root with even y, twice as fast as a bigint sqrt.
  const even = ECDH.convertKey(
    Buffer.concat([COMPRESSED_EVEN, x1]),
    'prime256v1',
    undefined,
    undefined,
    'uncompressed',
  ) as Buffer;
  const xQ = bytesToField(x1);
  const yEven = bytesToField(even.subarray(33));
  // kE = ±kP would mean E = ±P, excluded above; so xQ ≠ x(kP) and the chord is defined.
  const lambda = Fp.mul(Fp.sub(kP.y, yEven), Fp.inv(Fp.sub(kP.x, xQ)));
  const xOfSum = Fp.sub(Fp.sub(Fp.sqr(lambda), xQ), kP.x);
  if (Fp.eql(xOfSum, x2)) return new Uint8Array(even);
  const out = new Uint8Array(even);
  out.set(Fp.toBytes(Fp.neg(yEven)), 33);
  return out;
}

const COMPRESSED_EVEN = Buffer.from([0x02]);

/** E + P as uncompressed bytes; one affine addition (one field inversion, E ≠ ±P). */
function affineSumWithBase(e: InstanceType<typeof Point>): Uint8Array {
  const { x: x1, y: y1 } = e.toAffine();
  const { x: x2, y: y2 } = Point.BASE.toAffine();
  const lambda = Fp.mul(Fp.sub(y2, y1), Fp.inv(Fp.sub(x2, x1)));
  const x3 = Fp.sub(Fp.sub(Fp.sqr(lambda), x1), x2);
  const y3 = Fp.sub(Fp.mul(lambda, Fp.sub(x1, x3)), y1);
  const out = new Uint8Array(POINT_LENGTH);
  out[0] = 0x04;
  out.set(Fp.toBytes(x3), 1);
  out.set(Fp.toBytes(y3), 33);
  return out;
}

/**
 * The recrypted originator point E' the transform writes: x(k·E) with the even y, i.e.
 * the canonical one of ±k·E. Every reader (OpenSSL, NSS, gpgsm, Windows CNG) derives the
 * key-encryption key from the x-coordinate of d·E' alone (RFC 5753 / SEC 1 ECDH), and
 * x(d·(−Q)) = x(d·Q), so this point decrypts exactly as k·E does. It costs one OpenSSL
 * ECDH and a decompression, half of `multiplyPointNode`'s exact y recovery
 * (`npm run bench -- scalar`). Being canonical, recrypting in steps still equals
 * recrypting with the composed key, byte for byte.
 */
export function recryptPoint(point: Uint8Array, k: Scalar): Uint8Array {
  assertPoint(point, 'point');
  assertScalar(k, 'k');
  const x = ecdhFor(k).computeSecret(point);
  return new Uint8Array(
    ECDH.convertKey(
      Buffer.concat([COMPRESSED_EVEN, x]),
      'prime256v1',
      undefined,
      undefined,
      'uncompressed',
    ) as Buffer,
  );
}

// setPrivateKey computes k·P; a device's few keys are reused for every message it
// fetches, so keep the last few ECDH objects instead of redoing that per message.
const ecdhCache = new Map<Scalar, ECDH>();
const ECDH_CACHE_SIZE = 256;

function ecdhFor(k: Scalar): ECDH {
  const cached = ecdhCache.get(k);
  if (cached !== undefined) return cached;
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Fn.toBytes(k));
  if (ecdhCache.size >= ECDH_CACHE_SIZE) ecdhCache.delete(ecdhCache.keys().next().value!);
  ecdhCache.set(k, ecdh);
  return ecdh;
}

/** x(k·E) alone through OpenSSL: what an ECDH costs without recovering y (for the bench). */
export function multiplyPointNodeX(point: Uint8Array, k: Scalar): Uint8Array {
  assertPoint(point, 'point');
  assertScalar(k, 'k');
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Fn.toBytes(k));
  return new Uint8Array(ecdh.computeSecret(point));
}
