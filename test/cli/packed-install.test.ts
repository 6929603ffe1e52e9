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

/** Asynchronous, so that the gateway the last test needs starts while npm works. */
function npm(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 540_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`npm ${args.join(' ')} failed (${code}):\n${output}`));
    });
  });
}

describe('the packed tarball installs and runs without the source tree', () => {
  const dir = tempDir('recrypt-pack-');
  const clone = join(dir.path, 'clone');
  const prefix = join(dir.path, 'prefix');
  const recrypt = join(prefix, 'bin', 'recrypt');
  let tarball = '';
  let world: CliWorld | undefined;
  /** `owner init` as `user add` printed it for packed@example.org. */
  let ownerArgs: string[] = [];

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

  async function packAndInstall(): Promise<void> {
    mkdirSync(clone);
    freshClone(clone);
    cpSync(join(ROOT, 'docs'), join(clone, 'docs'), { recursive: true });
    cpSync(join(ROOT, 'config'), join(clone, 'config'), { recursive: true });
    await npm(['pack', '--pack-destination', dir.path], clone);
    const packed = readdirSync(dir.path).filter((name) => name.endsWith('.tgz'));
    expect(packed).toEqual([`${packageJson.name}-${packageJson.version}.tgz`]);
    tarball = join(dir.path, packed[0]!);
    await npm(
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
  }

  beforeAll(async () => {
    // The gateway and its user (the source tree's CLI, the operator's side) do not depend
    // on the package: they are made while npm builds and installs. allSettled, so that a
    // failure of either is reported once both have ended.
    const [installing, starting] = await Promise.allSettled([
      packAndInstall(),
      startCliWorld().then(async (started) => {
        world = started;
        ownerArgs = (await addUserViaCli(started, 'packed@example.org')).ownerArgs;
      }),
    ]);
    if (installing.status === 'rejected') throw installing.reason;
    if (starting.status === 'rejected') throw starting.reason;
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
