/**
 * The CLI loads only the module of the command it runs (src/cli/commands/index.ts): its
 * table must name every top-level command each module registers, and nothing else, or a
 * command would be missing (or load the wrong module) when it is run.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMAND_MODULES } from '../../src/cli/commands/index.js';
import { runCli } from '../helpers/cli-run.js';

async function namesRegisteredBy(load: (typeof COMMAND_MODULES)[string]): Promise<string[]> {
  const program = new Command('recrypt');
  (await load()).register(program);
  return program.commands.map((command) => command.name());
}

describe('the command table', () => {
  it('maps every command to the module that registers it', async () => {
    for (const [name, load] of Object.entries(COMMAND_MODULES)) {
      expect(await namesRegisteredBy(load), name).toContain(name);
    }
  });

  it('lists every command some module registers', async () => {
    const registered = new Set<string>();
    for (const load of new Set(Object.values(COMMAND_MODULES))) {
      for (const name of await namesRegisteredBy(load)) registered.add(name);
    }
    expect([...registered].sort()).toEqual(Object.keys(COMMAND_MODULES).sort());
  });

  it('runs a command with only its module, and lists them all in the help', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const name of Object.keys(COMMAND_MODULES))
      expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    const queueHelp = await runCli(['queue', '--help']);
    expect(queueHelp.code).toBe(0);
    expect(queueHelp.stdout).toMatch(/^Usage: recrypt queue/m);
    const typo = await runCli(['usr']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/Did you mean user\?/);
  });
});
