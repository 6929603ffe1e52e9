/**
 * Which module a pool's worker thread runs (src/smtp/pool-worker.ts) when the process runs
 * the TypeScript sources: the same module in a JavaScript build of src/ when one is named,
 * else the `.ts` module through tsx registered in the worker (`node --import tsx`, bench).
 * The worker modules here are stand-ins that only say where they were loaded from.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILT_SOURCES_ENV, startPoolWorker } from '../../src/smtp/pool-worker.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dirs: { remove(): void }[] = [];
afterAll(() => {
  for (const dir of dirs) dir.remove();
});

describe('startPoolWorker from the TypeScript sources', () => {
  it('with a build named in RECRYPT_BUILT_SOURCES: the module at the same place in the build', async () => {
    const build = tempDir();
    dirs.push(build);
    const module = join(build.path, 'smtp', 'adapters', 'encrypt-worker.js');
    mkdirSync(join(build.path, 'smtp', 'adapters'), { recursive: true });
    writeFileSync(module, "require('node:worker_threads').parentPort.postMessage(__filename);\n");

    const previous = process.env[BUILT_SOURCES_ENV];
    process.env[BUILT_SOURCES_ENV] = build.path;
    let worker;
    try {
      worker = startPoolWorker(
        new URL('../../src/smtp/adapters/encrypt-pool.ts', import.meta.url).href,
        './encrypt-worker',
        {},
      );
    } finally {
      if (previous === undefined) delete process.env[BUILT_SOURCES_ENV];
      else process.env[BUILT_SOURCES_ENV] = previous;
    }
    const loaded = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(loaded).toBe(module);
  });

  it('without one: tsx registered in the worker loads the .ts module', () => {
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(join(dir.path, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(dir.path, 'stand-in.ts'),
      "import { parentPort } from 'node:worker_threads';\n" +
        "const said: string = 'loaded from TypeScript';\n" +
        'parentPort!.postMessage(said);\n',
    );
    const poolWorker = pathToFileURL(join(ROOT, 'src', 'smtp', 'pool-worker.ts')).href;
    const caller = pathToFileURL(join(dir.path, 'pool.ts')).href;
    // A process of its own: the worker's module loader thread stays out of this one.
    const script = `import(${JSON.stringify(poolWorker)}).then(({ startPoolWorker }) => {
      const worker = startPoolWorker(${JSON.stringify(caller)}, './stand-in', {});
      worker.once('message', (said) => { console.log(said); void worker.terminate(); });
      worker.once('error', (error) => { console.error(error); process.exitCode = 1; });
    });`;
    const output = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, [BUILT_SOURCES_ENV]: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(output.trim()).toBe('loaded from TypeScript');
  });
});
