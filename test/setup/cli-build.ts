/**
 * Vitest global set-up: the tests run the real `recrypt` process many times (every CLI
 * test, every `recrypt start`). Run through tsx, each start spends ~2 s of CPU loading the
 * TypeScript loader and resolving ~800 modules through it; a plain JavaScript copy of `src/`
 * starts in a fraction of that. So the set-up transpiles `src/` once per source state with
 * esbuild (no bundling, no type check: `npm run typecheck` does that) into
 * `.test-build/<hash of src>/`, which `test/helpers/cli-command.ts` runs.
 *
 * The directory name is a hash of every source file, so concurrent test runs on one tree
 * share a build or use their own, never one being rewritten under them. The copy of
 * package.json one level up is what `src/cli/version.ts` reads (`../../package.json`
 * from `cli/version.js`) and marks the `.js` files as ES modules.
 *
 * The same build is where the MX's worker pools started inside the test processes load
 * their workers from (RECRYPT_BUILT_SOURCES, src/smtp/pool-worker.ts): plain JavaScript
 * modules, as in a deployed gateway, instead of tsx registered in each worker.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { TestProject } from 'vitest/node';
import { BUILT_SOURCES_ENV } from '../../src/smtp/pool-worker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');
export const TEST_BUILD_ROOT = join(ROOT, '.test-build');
/** Builds for other source states are removed once this old: no run lasts that long. */
const STALE_MS = 6 * 60 * 60 * 1000;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(path);
      return entry.isFile() && entry.name.endsWith('.ts') ? [path] : [];
    })
    .sort();
}

function hashOf(files: string[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(relative(SRC, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

function removeStaleBuilds(keep: string): void {
  for (const entry of readdirSync(TEST_BUILD_ROOT, { withFileTypes: true })) {
    const path = join(TEST_BUILD_ROOT, entry.name);
    if (!entry.isDirectory() || path === keep) continue;
    if (Date.now() - statSync(path).mtimeMs > STALE_MS)
      rmSync(path, { recursive: true, force: true });
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const files = sourceFiles(SRC);
  const target = join(TEST_BUILD_ROOT, hashOf(files));
  mkdirSync(TEST_BUILD_ROOT, { recursive: true });
  writeAtomically(
    join(TEST_BUILD_ROOT, 'package.json'),
    readFileSync(join(ROOT, 'package.json'), 'utf8'),
  );
  if (!existsSync(target)) {
    const staging = `${target}.${process.pid}.staging`;
    await build({
      entryPoints: files,
      outdir: staging,
      outbase: SRC,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      bundle: false,
      logLevel: 'warning',
    });
    try {
      renameSync(staging, target);
    } catch {
      // Another run built the same sources first: theirs is identical.
      rmSync(staging, { recursive: true, force: true });
    }
  }
  removeStaleBuilds(target);
  project.provide('cliBuild', target);
  // Set before Vitest starts the test processes, which inherit it.
  process.env[BUILT_SOURCES_ENV] = target;
}

declare module 'vitest' {
  export interface ProvidedContext {
    cliBuild: string;
  }
}
