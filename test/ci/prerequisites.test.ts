/**
 * CI installs the packages of .ci/prerequisites with --no-install-recommends on a fresh
 * Debian machine. A test that passes here only because this machine happens to have a
 * package (swaks' STARTTLS needs Net::SSLeay, which swaks merely recommends) fails there.
 * So: everything the tests call must come from a listed package or from what those
 * depend on (Depends and Pre-Depends, recursively) or from the base system (Essential and
 * Priority: required packages, on every Debian machine), and every binary a test asks for
 * with requireBinary must be named in the list.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { readPrerequisites, type Need } from '../helpers/prerequisites.js';
import { tempDir } from '../helpers/tmp.js';

const aptCache = requireBinary('apt-cache');
const dpkgQuery = requireBinary('dpkg-query');

const tmp = tempDir('prerequisites-');
afterAll(() => tmp.remove());

function basePackages(): Set<string> {
  const out = execFileSync(dpkgQuery, ['-W', '-f', '${Package} ${Essential} ${Priority}\\n'], {
    encoding: 'utf8',
  });
  const base = new Set<string>();
  for (const line of out.split('\n')) {
    const [name, essential, priority] = line.split(' ');
    if (name !== undefined && (essential === 'yes' || priority === 'required')) base.add(name);
  }
  return base;
}

/** The packages apt installs for `packages` without Recommends: they and their dependencies. */
function dependencyClosure(packages: string[]): Set<string> {
  const out = execFileSync(
    aptCache,
    [
      'depends',
      '--recurse',
      '--no-recommends',
      '--no-suggests',
      '--no-conflicts',
      '--no-breaks',
      '--no-replaces',
      '--no-enhances',
      ...packages,
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const closure = new Set<string>();
  for (const line of out.split('\n')) {
    // Top-level lines are the packages visited; indented lines without a field name are
    // the packages that provide a virtual one (`<perl:any>` → perl).
    const provider = /^ {4}(\S+)$/.exec(line);
    const name = /^\S/.test(line) ? line.trim() : provider?.[1];
    if (name !== undefined) closure.add(name.replace(/^<|>$/g, '').replace(/:\w+$/, ''));
  }
  return closure;
}

/** The packages that own `paths` (dpkg -S in one call; diversion lines are not owners). */
function ownersOf(paths: string[]): Map<string, string> {
  const result = spawnSync(dpkgQuery, ['-S', ...paths], { encoding: 'utf8' });
  const owners = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const match = /^([^:\s,]+)(?::\w+)?: (\S+)$/.exec(line);
    if (match !== null && !line.startsWith('diversion ')) owners.set(match[2]!, match[1]!);
  }
  return owners;
}

/**
 * Where each thing the tests call comes from (null: from no package). Binaries are
 * looked up where Debian puts them, not through PATH (a developer's pyenv shim is no
 * package), through update-alternatives links; modules through Debian's perl and python3.
 */
function ownersOfNeeds(needs: Need[]): (string | null)[] {
  const candidates = needs.map((need): string[] => {
    if (need.kind === 'bin') {
      return ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].flatMap((dir) => {
        const path = join(dir, need.name);
        return existsSync(path) ? [path, realpathSync(path)] : [];
      });
    }
    const file =
      need.kind === 'perl'
        ? spawnSync(
            '/usr/bin/perl',
            [`-M${need.name}`, '-e', `print $INC{"${need.name.replace(/::/g, '/')}.pm"}`],
            { encoding: 'utf8' },
          )
        : spawnSync(
            '/usr/bin/python3',
            ['-c', `import ${need.name}; print(${need.name}.__file__)`],
            { encoding: 'utf8' },
          );
    return file.status === 0 ? [file.stdout.trim()] : [];
  });
  const owners = ownersOf([...new Set(candidates.flat())]);
  return candidates.map(
    (paths) => paths.map((p) => owners.get(p)).find((o) => o !== undefined) ?? null,
  );
}

function testSources(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...testSources(path));
    else if (/\.(ts|py)$/.test(entry.name)) files.push(path);
  }
  return files;
}

/**
 * A directory standing in for this machine's PATH without `hidden`: a link to every
 * program on PATH (the first of each name, as the shell finds it) but those.
 */
function pathWithout(hidden: string[]): string {
  const dir = join(tmp.path, `path-without-${hidden.join('-')}`);
  mkdirSync(dir);
  for (const entry of (process.env.PATH ?? '').split(':')) {
    if (entry === '' || !existsSync(entry)) continue;
    for (const name of readdirSync(entry)) {
      const link = join(dir, name);
      if (!hidden.includes(name) && !existsSync(link)) symlinkSync(join(entry, name), link);
    }
  }
  return dir;
}

describe('test prerequisites (.ci/prerequisites)', () => {
  const list = readPrerequisites();
  let closure: Set<string>;

  beforeAll(() => {
    closure = new Set([...dependencyClosure(list.map((p) => p.package)), ...basePackages()]);
  });

  it('names packages apt knows', () => {
    for (const p of list) expect(closure.has(p.package), p.package).toBe(true);
  });

  it('everything the tests call comes from a listed package, its Depends, or the base system', () => {
    const outside: string[] = [];
    const needs = list.flatMap((p) => p.needs);
    const owners = ownersOfNeeds(needs);
    needs.forEach((need, i) => {
      const owner = owners[i];
      if (owner === null || owner === undefined)
        outside.push(`${need.kind}:${need.name} (not installed from a package)`);
      else if (!closure.has(owner))
        outside.push(`${need.kind}:${need.name} is in ${owner}, outside the closure`);
    });
    expect(outside).toEqual([]);
  });

  it('the closure check would catch a package that comes only as a Recommends', () => {
    // swaks recommends libnet-ssleay-perl: without it listed, Net::SSLeay is outside.
    const withoutSsleay = dependencyClosure(['swaks']);
    expect(withoutSsleay.has('swaks')).toBe(true);
    expect(withoutSsleay.has('libnet-ssleay-perl')).toBe(false);
  });

  it('every binary a test asks for is named in the list (or is part of the base system)', () => {
    const named = new Set(
      list.flatMap((p) => p.needs.filter((n) => n.kind === 'bin')).map((n) => n.name),
    );
    const base = basePackages();
    const asked = new Map<string, string>();
    for (const file of testSources('test')) {
      for (const match of readFileSync(file, 'utf8').matchAll(/requireBinary\('([^']+)'\)/g)) {
        if (!named.has(match[1]!)) asked.set(match[1]!, file);
      }
    }
    const names = [...asked.keys()];
    const owners = ownersOfNeeds(names.map((name) => ({ kind: 'bin', name })));
    const unlisted = names
      .filter((_, i) => owners[i] === null || !base.has(owners[i]!))
      .map((name) => `${name} (${asked.get(name)})`);
    expect(unlisted).toEqual([]);
  });

  it('.ci/run installs exactly this list', () => {
    const run = readFileSync('.ci/run', 'utf8').replace(/\\\n\s*/g, ' ');
    const install = run.split('\n').filter((line) => /^\s*apt-get install/.test(line));
    expect(install).toHaveLength(1);
    expect(install[0]).toMatch(
      /\$\(sed -e 's\/#\.\*\/\/' \.ci\/prerequisites \| awk 'NF \{ print \$1 \}'\)/,
    );
  });

  it('the pretest check stops at once, naming what is missing and the one install command', () => {
    const file = join(tmp.path, 'prerequisites');
    writeFileSync(
      file,
      [
        'openssl bin:openssl',
        'no-such-package-a bin:no-such-binary-a perl:No::Such::Module',
        'no-such-package-b python:no_such_module_b',
      ].join('\n'),
    );
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'test/prerequisites-check.ts'], {
      encoding: 'utf8',
      env: { ...process.env, RECRYPT_PREREQUISITES_FILE: file },
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      'no-such-package-a: no-such-binary-a, perl No::Such::Module\n  no-such-package-b: python no_such_module_b\n',
    );
    expect(result.stderr).not.toContain('openssl');
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      '  apt-get install -y no-such-package-a no-such-package-b',
    );
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.pretest).toContain('test/prerequisites-check.ts');
  });

  it('on this machine with swaks and pk12util off PATH, the real list names just their packages', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'test/prerequisites-check.ts'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: pathWithout(['swaks', 'pk12util']) },
    });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toBe(
      [
        'The tests need programs and modules that are not installed here:',
        '  libnss3-tools: pk12util',
        '  swaks: swaks',
        'Install them with:',
        '  apt-get install -y libnss3-tools swaks',
        '',
      ].join('\n'),
    );
  });
});
