import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blindDeviceSecret, gatewayUnblind, ownerRespond } from '../../src/recrypt/blinded.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import {
  CURVE_ORDER,
  composeKeys,
  multiplyPoint,
  multiplyScalars,
  publicPoint,
  randomScalar,
  recryptionKey,
} from '../../src/recrypt/scalar.js';

const n = CURVE_ORDER;
const scalarArb = fc.bigInt({ min: 1n, max: n - 1n });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The whole protocol as the three parties would run it. */
function blindedIssue(groupSecret: bigint, deviceSecret: bigint, blinding?: bigint): bigint {
  const request = blindDeviceSecret(deviceSecret, blinding);
  const beta = ownerRespond(groupSecret, request.toOwner);
  return gatewayUnblind(beta, request.toGateway);
}

const BUCKETS = 16;
/** Which of 16 buckets the top 4 bits of a 256-bit scalar fall in. */
const bucketOf = (k: bigint): number => Number(k >> 252n);

function histogram(values: bigint[]): number[] {
  const counts = new Array<number>(BUCKETS).fill(0);
  for (const v of values) counts[bucketOf(v)]! += 1;
  return counts;
}

/** Pearson's statistic against the uniform distribution (15 degrees of freedom). */
function chiSquareUniform(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

/** Two-sample homogeneity statistic for equal sample sizes (15 degrees of freedom). */
function chiSquareSame(a: number[], b: number[]): number {
  return a.reduce((sum, ai, i) => {
    const bi = b[i]!;
    return ai + bi === 0 ? sum : sum + (ai - bi) ** 2 / (ai + bi);
  }, 0);
}

/*
 * Bounds that cannot flake: χ² with 15 degrees of freedom has mean 15 and standard
 * deviation ≈ 5.5; P(χ² > 90) < 1e-12. A broken blinding (α depending on d, or a
 * constant t) fails these by orders of magnitude (χ² in the thousands).
 */
const CHI_SQUARE_BOUND = 90;
const SAMPLES = 4000;

function alphas(deviceSecret: bigint, count: number): bigint[] {
  return Array.from({ length: count }, () => blindDeviceSecret(deviceSecret).toOwner);
}

describe('blinded issue', () => {
  it('gives the same key as the direct computation for arbitrary secrets and blindings', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (g, d, t) => {
        expect(blindedIssue(g, d, t)).toBe(recryptionKey(g, d));
      }),
    );
  });

  it('gives the same key with fresh random blindings', () => {
    for (let i = 0; i < 50; i++) {
      const g = randomScalar();
      const d = randomScalar();
      expect(blindedIssue(g, d)).toBe(recryptionKey(g, d));
    }
  });

  it('the blinded key recrypts: d·(rk·E) = g·E', () => {
    const g = randomScalar();
    const d = randomScalar();
    const rk = blindedIssue(g, d);
    const ephemeral = publicPoint(randomScalar());
    expect(hex(multiplyPoint(multiplyPoint(ephemeral, rk), d))).toBe(
      hex(multiplyPoint(ephemeral, g)),
    );
  });

  it('α alone is consistent with every device secret', () => {
    // For any observed α and any candidate d there is exactly one t giving it: t = α·d.
    fc.assert(
      fc.property(scalarArb, scalarArb, (alpha, d) => {
        expect(blindDeviceSecret(d, multiplyScalars(alpha, d)).toOwner).toBe(alpha);
      }),
    );
  });

  it('messages never repeat across issues for the same device', () => {
    const d = randomScalar();
    const owner = new Set<bigint>();
    const gateway = new Set<bigint>();
    for (let i = 0; i < 1000; i++) {
      const request = blindDeviceSecret(d);
      owner.add(request.toOwner);
      gateway.add(request.toGateway);
    }
    expect(owner.size).toBe(1000);
    expect(gateway.size).toBe(1000);
  });

  it('α is uniform in its high bits, for random and for extreme device secrets', () => {
    for (const d of [randomScalar(), 1n, n - 1n, 2n]) {
      expect(chiSquareUniform(histogram(alphas(d, SAMPLES)))).toBeLessThan(CHI_SQUARE_BOUND);
    }
  });

  it('α has the same distribution for two different device secrets', () => {
    const a = histogram(alphas(randomScalar(), SAMPLES));
    const b = histogram(alphas(randomScalar(), SAMPLES));
    expect(chiSquareSame(a, b)).toBeLessThan(CHI_SQUARE_BOUND);
  });

  it('every bit of α and of τ is balanced', () => {
    const d = randomScalar();
    const samples = Array.from({ length: 2000 }, () => blindDeviceSecret(d));
    for (const pick of [
      (r: (typeof samples)[0]) => r.toOwner,
      (r: (typeof samples)[0]) => r.toGateway,
    ]) {
      // Values are uniform below n ≈ 2^256 − 2^224: even the top bits are 1/2 ± 2^-32.
      for (let bit = 0n; bit < 256n; bit++) {
        const ones = samples.filter((r) => (pick(r) >> bit) & 1n).length;
        // Mean 1000, σ ≈ 22.4: ±200 is nearly 9σ, never reached by chance.
        expect(Math.abs(ones - 1000)).toBeLessThan(200);
      }
    }
  });

  it('the statistics above do catch a leaking blinding', () => {
    // Control: a "blinding" with a small t makes α = t·d⁻¹ cluster — the test must see it.
    const d = randomScalar();
    const leaky = Array.from(
      { length: SAMPLES },
      (_, i) => blindDeviceSecret(d, BigInt((i % 3) + 1)).toOwner,
    );
    expect(chiSquareUniform(histogram(leaky))).toBeGreaterThan(CHI_SQUARE_BOUND);
  });

  it('composition is associative and equals two recryption steps', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (a, b, c) => {
        expect(composeKeys(composeKeys(a, b), c)).toBe(composeKeys(a, composeKeys(b, c)));
      }),
    );
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (e, a, b) => {
        const point = publicPoint(e);
        expect(hex(multiplyPoint(point, composeKeys(a, b)))).toBe(
          hex(multiplyPoint(multiplyPoint(point, a), b)),
        );
      }),
      { numRuns: 30 },
    );
  });

  it('a list key composed with a member device key is the list → device key', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (gList, gUser, d) => {
        expect(composeKeys(recryptionKey(gList, gUser), recryptionKey(gUser, d))).toBe(
          recryptionKey(gList, d),
        );
      }),
    );
  });

  it('refuses bad inputs with typed errors naming the argument', () => {
    const cases: Array<[() => unknown, string]> = [
      [() => blindDeviceSecret(0n), 'deviceSecret'],
      [() => blindDeviceSecret(1n, n), 'blinding'],
      [() => ownerRespond(5 as unknown as bigint, 1n), 'groupSecret'],
      [() => ownerRespond(1n, 0n), 'alpha'],
      [() => gatewayUnblind(-1n, 1n), 'beta'],
      [() => gatewayUnblind(1n, n + 5n), 'tau'],
    ];
    for (const [fn, argument] of cases) {
      expect(fn).toThrow(RecryptError);
      expect(fn).toThrow(argument);
    }
  });
});
