/**
 * Starts the thread of one of the MX's worker pools (encrypt-pool.ts, auth-pool.ts) from
 * the module next to the pool: `<module>.js` when the gateway runs built, as deployed.
 *
 * When the process runs the TypeScript sources (the tests, `node --import tsx`), a worker
 * cannot load a `.ts` module by itself: Node 20 does not pass the parent's loader on to a
 * worker. The worker then runs the same module from a JavaScript build of src/ when the
 * process names one in RECRYPT_BUILT_SOURCES (the tests' set-up does, test/setup/cli-build.ts),
 * else it registers tsx itself and imports the `.ts` module. The second way gives every
 * worker a module loader thread of its own (Node 20's module.register()), which runs at the
 * event loop's priority and is torn down with the worker: threads a deployed gateway never
 * has. The tests therefore run their workers as the gateway does.
 */
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A directory holding src/ built to JavaScript (same layout, `.js` for `.ts`). */
export const BUILT_SOURCES_ENV = 'RECRYPT_BUILT_SOURCES';

const SOURCES = fileURLToPath(new URL('..', import.meta.url));

/** The worker running `module` (a path without extension, relative to `callerUrl`). */
export function startPoolWorker(callerUrl: string, module: string, options: WorkerOptions): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`${module}.js`, callerUrl), options);
  const source = fileURLToPath(new URL(`${module}.ts`, callerUrl));
  const built = process.env[BUILT_SOURCES_ENV];
  if (built)
    return new Worker(
      pathToFileURL(join(built, relative(SOURCES, source).replace(/\.ts$/, '.js'))),
      options,
    );
  const tsx = new URL('../../node_modules/tsx/dist/esm/api/index.mjs', import.meta.url).href;
  const entry = pathToFileURL(source).href;
  const code = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { ...options, eval: true });
}
