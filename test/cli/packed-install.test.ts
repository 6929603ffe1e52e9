/**
 * The tool as an owner or operator gets it: `npm pack` of a clean copy of the sources
 * (prepack builds dist/), `npm install -g` of the tarball into a throwaway prefix, then
 * the installed `recrypt` — not the source tree's — prints the package's version and runs
 * the owner's commands against a running gateway.
 *
 * The install takes every package tarball from npm's cache, which `npm ci` filled
 * (`--prefer-offline`; the registry is asked only for the package documents `npm ci` had
 * no need of, as the lockfile named every version) and does not run better-sqlite3's native
 * build (`--ignore-scripts`; operators add `--allow-scripts=better-sqlite3`,
 * docs/deployment.md): the owner's commands never open SQLite, and compiling it would
 * cost CI minutes without testing anything of ours.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUserViaCli, PASSPHRASE, startCliWorld, type CliWorld } from '../helpers/cli-flow.js';
import type { CliResult } from '../helpers/cli-run.js';
import { freshClone, ROOT } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/tmp.js';

const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
};

function npm(args: string[], cwd: string): void {
  const result = spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 540_000 });
  if (result.status !== 0) {
    throw new Error(
      `npm ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`,
    );
  }
}

describe('the packed tarball installs and runs without the source tree', () => {
  const dir = tempDir('recrypt-pack-');
  const clone = join(dir.path, 'clone');
  const prefix = join(dir.path, 'prefix');
  const recrypt = join(prefix, 'bin', 'recrypt');
  let tarball = '';
  let world: CliWorld | undefined;

  function installed(args: string[], cwd: string, env: Record<string, string> = {}) {
    return new Promise<CliResult>((resolve, reject) => {
      const child = spawn(recrypt, args, {
        cwd,
        env: { PATH: process.env['PATH'] ?? '', HOME: dir.path, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  beforeAll(async () => {
    mkdirSync(clone);
    freshClone(clone);
    cpSync(join(ROOT, 'docs'), join(clone, 'docs'), { recursive: true });
    cpSync(join(ROOT, 'config'), join(clone, 'config'), { recursive: true });
    npm(['pack', '--pack-destination', dir.path], clone);
    const packed = readdirSync(dir.path).filter((name) => name.endsWith('.tgz'));
    expect(packed).toEqual([`${packageJson.name}-${packageJson.version}.tgz`]);
    tarball = join(dir.path, packed[0]!);
    npm(
      [
        'install',
        '-g',
        '--prefix',
        prefix,
        '--prefer-offline',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        tarball,
      ],
      dir.path,
    );
    world = await startCliWorld();
  }, 600_000);

  afterAll(async () => {
    await world?.close();
    dir.remove();
  });

  it('holds the built tool and the docs, and none of the sources, tests or secrets', () => {
    const listing = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout.split('\n');
    expect(listing).toContain('package/dist/cli/main.js');
    expect(listing).toContain('package/README.md');
    expect(listing).toContain('package/docs/deployment.md');
    const unwanted = listing.filter((path) =>
      /^package\/(src|test|bench|data|node_modules)\/|\.p12$|owner\.key$|\.env$/.test(path),
    );
    expect(unwanted).toEqual([]);
  });

  it('installs a `recrypt` that prints the version from package.json', async () => {
    expect(existsSync(recrypt)).toBe(true);
    const result = await installed(['--version'], dir.path);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe(packageJson.version);
  });

  it("runs the owner's commands against a running gateway", async () => {
    const gateway = world!;
    const { ownerArgs } = await addUserViaCli(gateway, 'packed@example.org');
    const ownerDir = join(dir.path, 'owner');
    mkdirSync(ownerDir);
    copyFileSync(gateway.gateway.certFile, join(ownerDir, 'gateway-cert.pem'));
    const env = { RECRYPT_PASSPHRASE: PASSPHRASE };
    const init = await installed(ownerArgs, ownerDir, env);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain('profile published');
    const device = await installed(['device', 'add', 'laptop'], ownerDir, env);
    expect(device.stderr).toBe('');
    expect(device.code).toBe(0);
    expect(existsSync(join(ownerDir, 'laptop.p12'))).toBe(true);
    const devices = await gateway.gateway.keyStore.listDevices('packed@example.org');
    expect(devices.map((entry) => entry.name)).toEqual(['laptop']);
  }, 240_000);
});
