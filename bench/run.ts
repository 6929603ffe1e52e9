/**
 * `npm run bench [-- name …]` runs the benchmarks in this directory: every
 * `<name>.bench.ts`, or only the named ones. Each prints its own figures and the
 * ratio against a baseline it measures side by side in the same run.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

for (const name of requested.length > 0 ? requested : available) {
  console.log(`\n## ${name}`);
  const module = (await import(pathToFileURL(`${here}/${name}.bench.ts`).href)) as {
    run: () => Promise<void>;
  };
  await module.run();
}
