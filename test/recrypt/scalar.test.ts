import { createECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecryptError } from '../../src/recrypt/errors.js';
import {
  CURVE_ORDER,
  composeKeys,
  invertScalar,
  multiplyPoint,
  multiplyPointNode,
  multiplyPointNodeX,
  multiplyScalars,
  publicPoint,
  randomScalar,
  recryptPoint,
  recryptionKey,
  scalarFromBytes,
  scalarToBytes,
  validatePoint,
} from '../../src/recrypt/scalar.js';

const n = CURVE_ORDER;
const scalarArb = fc.bigInt({ min: 1n, max: n - 1n });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The field prime of P-256 as 32 bytes (an x-coordinate that is out of range). */
const P_BYTES = Buffer.from(
  'ffffffff00000001000000000000000000000000ffffffffffffffffffffffff',
  'hex',
);

function nodeEcdh(k: bigint) {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(scalarToBytes(k)));
  return ecdh;
}

function expectRecryptError(fn: () => unknown, code: string, argument?: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RecryptError);
    expect((error as RecryptError).code).toBe(code);
    if (argument !== undefined) expect((error as Error).message).toContain(argument);
    return;
  }
  expect.fail('expected a RecryptError');
}

describe('scalars', () => {
  it('CURVE_ORDER is the P-256 group order', () => {
    expect(n).toBe(0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n);
  });

  it('randomScalar lies in [1, n-1] and does not repeat', () => {
    const seen = new Set<bigint>();
    for (let i = 0; i < 200; i++) {
      const k = randomScalar();
      expect(k >= 1n && k < n).toBe(true);
      seen.add(k);
    }
    expect(seen.size).toBe(200);
  });

  it('inverse, product and recryption key obey the field laws', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, (g, d) => {
        expect(multiplyScalars(d, invertScalar(d))).toBe(1n);
        expect(recryptionKey(g, d)).toBe(multiplyScalars(g, invertScalar(d)));
        expect(multiplyScalars(recryptionKey(g, d), d)).toBe(g);
        expect(composeKeys(g, d)).toBe((g * d) % n);
      }),
    );
  });

  it('scalarToBytes / scalarFromBytes round-trip as 32 bytes big-endian', () => {
    fc.assert(
      fc.property(scalarArb, (k) => {
        const bytes = scalarToBytes(k);
        expect(bytes.length).toBe(32);
        expect(BigInt('0x' + hex(bytes))).toBe(k);
        expect(scalarFromBytes(bytes)).toBe(k);
      }),
    );
  });

  it('scalarFromBytes refuses 0, n and larger instead of reducing', () => {
    expectRecryptError(() => scalarFromBytes(new Uint8Array(32)), 'invalid-scalar', 'bytes');
    const nBytes = Buffer.from(n.toString(16), 'hex');
    expectRecryptError(() => scalarFromBytes(nBytes), 'invalid-scalar');
    expectRecryptError(() => scalarFromBytes(new Uint8Array(32).fill(0xff)), 'invalid-scalar');
    expect(scalarFromBytes(Buffer.from((n - 1n).toString(16), 'hex'))).toBe(n - 1n);
  });

  it('refuses wrong types and out-of-range scalars, naming the argument', () => {
    const bad: unknown[] = [0n, n, n + 1n, -1n, 1, '1', null, undefined];
    for (const value of bad) {
      const code = 'invalid-scalar';
      expectRecryptError(() => invertScalar(value as bigint), code, 'k');
      expectRecryptError(() => recryptionKey(value as bigint, 1n), code, 'groupSecret');
      expectRecryptError(() => recryptionKey(1n, value as bigint), code, 'deviceSecret');
      expectRecryptError(() => composeKeys(value as bigint, 1n), code, 'a');
      expectRecryptError(() => multiplyScalars(1n, value as bigint), code, 'b');
      expectRecryptError(() => publicPoint(value as bigint), code, 'k');
      expectRecryptError(() => multiplyPoint(publicPoint(2n), value as bigint), code, 'k');
      expectRecryptError(() => multiplyPointNode(publicPoint(2n), value as bigint), code, 'k');
    }
    expectRecryptError(() => scalarFromBytes(new Uint8Array(31)), 'invalid-argument', 'bytes');
    expectRecryptError(() => scalarFromBytes('00' as unknown as Uint8Array), 'invalid-argument');
  });
});

describe('points', () => {
  const valid = publicPoint(randomScalar());

  function mutated(edit: (b: Uint8Array) => void): Uint8Array {
    const copy = new Uint8Array(valid);
    edit(copy);
    return copy;
  }

  const invalidPoints: Record<string, Uint8Array> = {
    empty: new Uint8Array(0),
    'identity (SEC1 single 0x00)': new Uint8Array([0]),
    'all zero with 0x04': mutated((b) => b.fill(0, 1)),
    'compressed form': Buffer.concat([
      Buffer.from([0x02 | (valid[64]! & 1)]),
      valid.subarray(1, 33),
    ]),
    'hybrid prefix 0x06': mutated((b) => (b[0] = 0x06)),
    'hybrid prefix 0x07': mutated((b) => (b[0] = 0x07)),
    'off the curve (y+1)': mutated((b) => (b[64] = b[64]! ^ 1)),
    'x = p': mutated((b) => b.set(P_BYTES, 1)),
    truncated: valid.subarray(0, 64),
    'one byte too long': Buffer.concat([valid, Buffer.from([0])]),
  };

  it('validatePoint accepts generated points', () => {
    fc.assert(fc.property(scalarArb, (k) => validatePoint(publicPoint(k))));
  });

  for (const [label, point] of Object.entries(invalidPoints)) {
    it(`refuses ${label}`, () => {
      expect(validatePoint(point)).toBe(false);
      expectRecryptError(() => multiplyPoint(point, 5n), 'invalid-point', 'point');
      expectRecryptError(() => multiplyPointNode(point, 5n), 'invalid-point', 'point');
      expectRecryptError(() => multiplyPointNodeX(point, 5n), 'invalid-point', 'point');
      expectRecryptError(() => recryptPoint(point, 5n), 'invalid-point', 'point');
    });
  }

  it('refuses non-byte inputs with invalid-argument', () => {
    expect(validatePoint('04' as unknown as Uint8Array)).toBe(false);
    expectRecryptError(() => multiplyPoint([4] as unknown as Uint8Array, 2n), 'invalid-argument');
  });

  it('publicPoint matches node:crypto ECDH public keys', () => {
    for (let i = 0; i < 20; i++) {
      const k = randomScalar();
      expect(hex(publicPoint(k))).toBe(nodeEcdh(k).getPublicKey('hex'));
    }
  });

  it('x(k·E) matches node:crypto ECDH shared secrets', () => {
    for (let i = 0; i < 20; i++) {
      const k = randomScalar();
      const e = publicPoint(randomScalar());
      const secret = nodeEcdh(k).computeSecret(e);
      expect(hex(multiplyPoint(e, k).subarray(1, 33))).toBe(secret.toString('hex'));
      expect(hex(multiplyPointNodeX(e, k))).toBe(secret.toString('hex'));
    }
  });

  it('multiplyPointNode recovers the same full point as noble', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, (e, k) => {
        const point = publicPoint(e);
        expect(hex(multiplyPointNode(point, k))).toBe(hex(multiplyPoint(point, k)));
      }),
      { numRuns: 200 },
    );
  });

  it('multiplyPointNode handles the degenerate points ±P and small multiples', () => {
    for (const e of [1n, n - 1n, 2n, n - 2n]) {
      for (const k of [1n, 2n, n - 1n, randomScalar()]) {
        expect(hex(multiplyPointNode(publicPoint(e), k))).toBe(
          hex(multiplyPoint(publicPoint(e), k)),
        );
      }
    }
  });

  it('multiplyPointNode keeps x-coordinates with leading zero bytes at 32 bytes', () => {
    // Walk E, 2E, 3E, … by additions until x(k·E) starts with a zero byte (≈256 steps).
    const e = p256.Point.fromBytes(publicPoint(randomScalar()));
    let q = e;
    let k = 1n;
    while (q.toBytes(false)[1] !== 0) {
      q = q.add(e);
      k += 1n;
    }
    expect(hex(multiplyPointNode(e.toBytes(false), k))).toBe(hex(q.toBytes(false)));
    expect(hex(multiplyPointNodeX(e.toBytes(false), k))).toBe(
      hex(q.toBytes(false).subarray(1, 33)),
    );
  });

  it('recryption preserves the ECDH secret a node:crypto device computes (docs/design.md §2)', () => {
    for (let i = 0; i < 10; i++) {
      const g = randomScalar();
      const d = randomScalar();
      const ephemeral = publicPoint(randomScalar());
      const recrypted = multiplyPoint(ephemeral, recryptionKey(g, d));
      expect(nodeEcdh(d).computeSecret(recrypted).toString('hex')).toBe(
        nodeEcdh(g).computeSecret(ephemeral).toString('hex'),
      );
    }
  });

  it('composed keys equal two recryption steps at the point level', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (e, a, b) => {
        const point = publicPoint(e);
        const twoSteps = multiplyPoint(multiplyPoint(point, a), b);
        expect(hex(multiplyPoint(point, composeKeys(a, b)))).toBe(hex(twoSteps));
      }),
      { numRuns: 50 },
    );
  });

  it('recryptPoint is ±k·E with the even y: same x as noble, canonical sign', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, (e, k) => {
        const point = publicPoint(e);
        const exact = multiplyPoint(point, k);
        const out = recryptPoint(point, k);
        expect(validatePoint(out)).toBe(true);
        expect(hex(out.subarray(0, 33))).toBe(hex(exact.subarray(0, 33)));
        expect(out[64]! & 1).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('recryptPoint keeps the ECDH secret a device computes, and composes byte for byte', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, scalarArb, (g, d, d2, e) => {
        const ephemeral = publicPoint(e);
        const rk = recryptionKey(g, d);
        expect(nodeEcdh(d).computeSecret(recryptPoint(ephemeral, rk)).toString('hex')).toBe(
          nodeEcdh(g).computeSecret(ephemeral).toString('hex'),
        );
        // group → device d, then d → d2 equals group → d2 in one step.
        const hop = recryptionKey(d, d2);
        expect(hex(recryptPoint(recryptPoint(ephemeral, rk), hop))).toBe(
          hex(recryptPoint(ephemeral, composeKeys(rk, hop))),
        );
      }),
      { numRuns: 50 },
    );
  });
});
