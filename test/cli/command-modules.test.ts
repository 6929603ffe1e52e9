/**
 * The CLI loads only the module of the command it runs (src/cli/commands/index.ts): its
 * table must name every top-level command each module registers, and nothing else, or a
 * command would be missing (or load the wrong module) when it is run.
 *
 * The table and its modules are read by a plain Node process from the JavaScript copy of
 * `src/` the CLI tests run (test/setup/cli-build.ts): imported here, every module `recrypt
 * start` needs would go through Vitest's transform, most of this file's time.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../helpers/cli-run.js';
import { ROOT } from '../helpers/gateway-process.js';

/** For each command of the table, what its loader's module registers; and each distinct loader's. */
interface TableReport {
  byCommand: Record<string, string[]>;
  byModule: string[][];
}

async function readTable(): Promise<TableReport> {
  const index = pathToFileURL(join(inject('cliBuild'), 'cli', 'commands', 'index.js')).href;
  const script = `
import { Command } from 'commander';
const { COMMAND_MODULES } = await import(${JSON.stringify(index)});
async function namesRegisteredBy(load) {
  const program = new Command('recrypt');
  (await load()).register(program);
  return program.commands.map((command) => command.name());
}
const byCommand = {};
for (const [name, load] of Object.entries(COMMAND_MODULES)) byCommand[name] = await namesRegisteredBy(load);
const byModule = [];
for (const load of new Set(Object.values(COMMAND_MODULES))) byModule.push(await namesRegisteredBy(load));
process.stdout.write(JSON.stringify({ byCommand, byModule }));
`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', script],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return JSON.parse(stdout) as TableReport;
}

describe('the command table', () => {
  let table: TableReport;

  beforeAll(async () => {
    table = await readTable();
  });

  it('maps every command to the module that registers it', () => {
    expect(Object.keys(table.byCommand).length).toBeGreaterThan(0);
    for (const [name, registered] of Object.entries(table.byCommand)) {
      expect(registered, name).toContain(name);
    }
  });

  it('lists every command some module registers', () => {
    const registered = new Set(table.byModule.flat());
    expect([...registered].sort()).toEqual(Object.keys(table.byCommand).sort());
  });

  it('runs a command with only its module, and lists them all in the help', async () => {
    // Three independent runs, side by side.
    const [help, queueHelp, typo] = await Promise.all([
      runCli(['--help']),
      runCli(['queue', '--help']),
      runCli(['usr']),
    ]);
    expect(help.code).toBe(0);
    for (const name of Object.keys(table.byCommand))
      expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    expect(queueHelp.code).toBe(0);
    expect(queueHelp.stdout).toMatch(/^Usage: recrypt queue/m);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/Did you mean user\?/);
  });
});
