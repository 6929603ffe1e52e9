/**
 * How tests start the real `recrypt` process: Node on the JavaScript copy of `src/` that
 * the global set-up made (test/setup/cli-build.ts), the same code `npm start` runs after
 * its build, without the TypeScript loader's start-up cost. Outside Vitest (the benches
 * share these helpers) there is no such build: the sources run through tsx.
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inject } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function testBuild(): string | null {
  try {
    return inject('cliBuild');
  } catch {
    return null; // not inside a Vitest worker
  }
}

/** The command that runs `recrypt`: prepend it to the CLI's arguments. */
export function cliCommand(): string[] {
  const build = testBuild();
  if (build !== null) return [process.execPath, join(build, 'cli', 'main.js')];
  // tsx by path: `--import tsx` would resolve from the working directory, maybe a temp dir.
  const tsx = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  return [process.execPath, '--import', tsx, join(ROOT, 'src', 'cli', 'main.ts')];
}
