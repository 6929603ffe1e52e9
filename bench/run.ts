/**
 * `npm run bench [-- name …]` runs the benchmarks in this directory: every
 * `<name>.bench.ts`, or only the named ones. Each prints its own figures and the
 * ratio against a baseline it measures side by side in the same run (harness.ts:
 * interleaved rounds, best and median). The load average is printed before and after
 * each bench; a bench that throws (an impossible ordering, BenchSanityError) is
 * reported and the run exits non-zero once every requested bench has run.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BenchSanityError, loadAverage } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((file) => file.endsWith('.bench.ts'))
  .map((file) => file.slice(0, -'.bench.ts'.length))
  .sort();

const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark: ${unknown.join(', ')} (available: ${available.join(', ')})`);
  process.exit(2);
}

const failed: string[] = [];
for (const name of requested.length > 0 ? requested : available) {
  console.log(`\n## ${name}`);
  console.log(`load average at start (1, 5, 15 min): ${loadAverage()}`);
  const module = (await import(pathToFileURL(`${here}/${name}.bench.ts`).href)) as {
    run: () => Promise<void>;
  };
  try {
    await module.run();
  } catch (error) {
    failed.push(name);
    const kind = error instanceof BenchSanityError ? 'SANITY CHECK FAILED' : 'FAILED';
    console.error(`\n!! ${name}: ${kind}: ${(error as Error).message}`);
  }
  console.log(`load average at end (1, 5, 15 min): ${loadAverage()}`);
}
if (failed.length > 0) {
  console.error(
    `\n!! benchmark(s) failed: ${failed.join(', ')}; their figures are not to be quoted`,
  );
  process.exit(1);
}
