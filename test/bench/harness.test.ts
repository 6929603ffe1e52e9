/**
 * The bench harness (bench/harness.ts): paths run interleaved in a rotated order, best
 * and median are what was measured, and an impossible ordering (a relay faster than what
 * it relays) fails with BenchSanityError, reported together after all figures.
 */
import { describe, expect, it } from 'vitest';
import {
  BenchSanityError,
  SanityChecks,
  compare,
  expectNotFaster,
  median,
} from '../../bench/harness.js';

describe('bench harness', () => {
  it('interleaves the paths, rotating which goes first, after the warm-up', async () => {
    const order: string[] = [];
    const path = (name: string, values: number[]) => ({
      name,
      run: () => {
        order.push(name);
        return values[order.filter((n) => n === name).length - 1] ?? 0;
      },
    });
    const results = await compare([path('a', [99, 5, 1, 3]), path('b', [99, 10, 30, 20])], {
      rounds: 3,
      warmup: 1,
    });
    expect(order).toEqual(['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']);
    expect(results.get('a')).toMatchObject({ samples: [5, 1, 3], best: 1, median: 3 });
    expect(results.get('b')).toMatchObject({ samples: [10, 30, 20], best: 10, median: 20 });
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('fails loudly on an impossible ordering, and not within the tolerance', async () => {
    const results = await compare(
      [
        { name: 'direct', run: () => 100 },
        { name: 'relay', run: () => 50 },
        { name: 'proxy', run: () => 95 },
      ],
      { rounds: 2 },
    );
    expect(() => expectNotFaster(results, 'relay', 'direct')).toThrow(BenchSanityError);
    expect(() => expectNotFaster(results, 'relay', 'direct')).toThrow(/impossible ordering/);
    expect(() => expectNotFaster(results, 'proxy', 'direct')).not.toThrow();
    const checks = new SanityChecks();
    checks.check(() => expectNotFaster(results, 'relay', 'direct'));
    checks.check(() => expectNotFaster(results, 'proxy', 'direct'));
    expect(() => checks.throwIfAny()).toThrow(BenchSanityError);
  });

  it('refuses a measurement that is not a duration', async () => {
    await expect(
      compare([{ name: 'x', run: () => Number.NaN }], { rounds: 1, warmup: 0 }),
    ).rejects.toThrow(BenchSanityError);
  });
});
