/**
 * The shared bench harness: the paths a bench compares run interleaved over several
 * rounds (each round in a rotated order, so no path always runs first or last), and
 * every path reports its best and median. A bench states the orderings that must hold
 * (a relay is never faster than what it relays); one that does not hold means the
 * figures measure something else (warm-up, caches, order), and the bench fails with a
 * non-zero exit and a message saying which ordering broke. The machine's load average
 * is printed at the start and the end of every bench (run.ts), so figures are quoted
 * with the load they were measured under.
 */
import { loadavg } from 'node:os';

/** One path of a comparison: `run` does the work once and returns what it measured. */
export interface BenchPath {
  name: string;
  /** One measurement: milliseconds of wall time (or µs of CPU: the unit is the bench's). */
  run: () => Promise<number> | number;
}

export interface PathResult {
  name: string;
  samples: number[];
  best: number;
  median: number;
}

export type Comparison = Map<string, PathResult>;

/** Thrown when an ordering that must hold does not: the figures cannot be trusted. */
export class BenchSanityError extends Error {
  override name = 'BenchSanityError';
}

export function loadAverage(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs every path `warmup` times (untimed) and then `rounds` times each, interleaved:
 * round r runs the paths starting at index r mod n.
 */
export async function compare(
  paths: readonly BenchPath[],
  options: { rounds: number; warmup?: number },
): Promise<Comparison> {
  if (paths.length === 0 || options.rounds < 1) throw new Error('nothing to compare');
  for (let w = 0; w < (options.warmup ?? 1); w++) for (const path of paths) await path.run();
  const samples = new Map<string, number[]>(paths.map((p) => [p.name, []]));
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < paths.length; i++) {
      const path = paths[(round + i) % paths.length]!;
      const value = await path.run();
      if (!Number.isFinite(value) || value < 0) {
        throw new BenchSanityError(`${path.name}: measured ${value}, not a duration`);
      }
      samples.get(path.name)!.push(value);
    }
  }
  const results: Comparison = new Map();
  for (const [name, values] of samples) {
    results.set(name, { name, samples: values, best: Math.min(...values), median: median(values) });
  }
  return results;
}

function result(results: Comparison, name: string): PathResult {
  const found = results.get(name);
  if (found === undefined) throw new Error(`no path named ${name}`);
  return found;
}

/**
 * Fails loudly unless `slower` takes at least as long as `faster` (median against median,
 * `tolerance` of noise allowed): e.g. the proxy against the Dovecot it relays.
 */
export function expectNotFaster(
  results: Comparison,
  slower: string,
  faster: string,
  tolerance = 0.1,
): void {
  const s = result(results, slower);
  const f = result(results, faster);
  if (s.median < f.median * (1 - tolerance)) {
    throw new BenchSanityError(
      `impossible ordering: "${slower}" (median ${s.median.toFixed(1)}) is faster than ` +
        `"${faster}" (median ${f.median.toFixed(1)}), which it cannot beat; these figures ` +
        `measure something else (warm-up, cache, order) and are not reported`,
    );
  }
}

/** Median and best of `name` as a ratio to `baseline`'s (median/median, best/best). */
export function ratio(results: Comparison, name: string, baseline: string): string {
  const r = result(results, name);
  const b = result(results, baseline);
  return `${(r.median / b.median).toFixed(2)}× median, ${(r.best / b.best).toFixed(2)}× best`;
}

/** One line per path: best, median and the number of rounds, in the bench's unit. */
export function formatResults(results: Comparison, unit: string, digits = 0): string {
  const width = Math.max(...[...results.keys()].map((name) => name.length));
  return [...results.values()]
    .map(
      (r) =>
        `  ${r.name.padEnd(width)}  best ${r.best.toFixed(digits)} ${unit}, ` +
        `median ${r.median.toFixed(digits)} ${unit} (${r.samples.length} rounds)`,
    )
    .join('\n');
}

/** Milliseconds `fn` takes. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/**
 * Collects failed orderings so a bench prints all its figures first and then fails
 * (`throwIfAny`) with every broken ordering named.
 */
export class SanityChecks {
  private readonly failures: string[] = [];

  check(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      if (!(error instanceof BenchSanityError)) throw error;
      console.error(`  !! ${error.message}`);
      this.failures.push(error.message);
    }
  }

  throwIfAny(): void {
    if (this.failures.length > 0) throw new BenchSanityError(this.failures.join('; '));
  }
}
