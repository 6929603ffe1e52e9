/**
 * The test prerequisites (.ci/prerequisites): Debian packages and what the tests call from
 * each (binaries, Perl modules, Python modules), and whether each is present here.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PREREQUISITES_FILE = fileURLToPath(
  new URL('../../.ci/prerequisites', import.meta.url),
);

export type Need =
  { kind: 'bin'; name: string } | { kind: 'perl'; name: string } | { kind: 'python'; name: string };

export interface Prerequisite {
  package: string;
  needs: Need[];
}

export function readPrerequisites(path = PREREQUISITES_FILE): Prerequisite[] {
  const list: Prerequisite[] = [];
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [name, ...words] = line.split(/\s+/);
    const needs = words.map((word): Need => {
      const match = /^(bin|perl|python):(\S+)$/.exec(word);
      if (match === null) throw new Error(`${path}: cannot read "${word}" (for ${name})`);
      return { kind: match[1] as Need['kind'], name: match[2]! };
    });
    list.push({ package: name!, needs });
  }
  return list;
}

export function describeNeed(need: Need): string {
  return need.kind === 'bin' ? need.name : `${need.kind} ${need.name}`;
}

/** Is it usable here, the way the tests use it (PATH for binaries)? */
export function present(need: Need): boolean {
  const probe =
    need.kind === 'bin'
      ? spawnSync('sh', ['-c', 'command -v "$1"', 'sh', need.name])
      : need.kind === 'perl'
        ? spawnSync('perl', [`-M${need.name}`, '-e', '1'])
        : spawnSync('python3', ['-c', `import ${need.name}`]);
  return probe.status === 0;
}

/** Packages with something missing, and what. */
export function missingPrerequisites(
  list = readPrerequisites(),
): { package: string; missing: string[] }[] {
  return list
    .map((p) => ({ package: p.package, missing: p.needs.filter((n) => !present(n)) }))
    .filter((p) => p.missing.length > 0)
    .map((p) => ({ package: p.package, missing: p.missing.map(describeNeed) }));
}

/** The one message `npm test` stops with; null when nothing is missing. */
export function missingMessage(missing: { package: string; missing: string[] }[]): string | null {
  if (missing.length === 0) return null;
  const lines = missing.map((m) => `  ${m.package}: ${m.missing.join(', ')}`);
  return [
    'The tests need programs and modules that are not installed here:',
    ...lines,
    'Install them with:',
    `  apt-get install -y ${missing.map((m) => m.package).join(' ')}`,
  ].join('\n');
}
