/**
 * docs/cli.md against the CLI itself: every command `recrypt --help` offers (down to the
 * last subcommand, e.g. `list approve`) and every long option of it is documented there,
 * and every `recrypt …` command the page names exists. The tree comes from the same
 * command modules the CLI registers (src/cli/commands/index.ts).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_MODULES } from '../../src/cli/commands/index.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/cli.md', import.meta.url)), 'utf8');

interface Leaf {
  path: string;
  options: string[];
}

/** Commands without subcommands, as "list approve", with their long options. */
function leaves(command: Command, prefix: string[] = []): Leaf[] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    if (sub.commands.length > 0) return leaves(sub, path);
    const options = sub.options
      .map((option) => option.long)
      .filter((long): long is string => long !== undefined && long !== '--help');
    return [{ path: path.join(' '), options }];
  });
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let program: Command;
let commands: Leaf[];

beforeAll(async () => {
  program = new Command('recrypt');
  for (const load of new Set(Object.values(COMMAND_MODULES))) (await load()).register(program);
  commands = leaves(program);
});

describe('docs/cli.md', () => {
  it('sees the command tree (sanity of the walk)', () => {
    const paths = commands.map((leaf) => leaf.path);
    expect(paths).toEqual(expect.arrayContaining(['user add', 'list approve', 'start']));
  });

  it('documents every command, as `recrypt <command>` or a table row `<command>`', () => {
    const missing = commands
      .map((leaf) => leaf.path)
      .filter((path) => !new RegExp(`\`(recrypt )?${escape(path)}[ \`]`).test(DOC));
    expect(missing).toEqual([]);
  });

  it('documents every long option of every command', () => {
    const missing = commands.flatMap((leaf) =>
      leaf.options
        .filter((option) => !new RegExp(`${escape(option)}\\b`).test(DOC))
        .map((option) => `${leaf.path} ${option}`),
    );
    expect(missing).toEqual([]);
  });

  it('names no command that does not exist', () => {
    const topLevel = new Set(program.commands.map((command) => command.name()));
    const leafPaths = new Set(commands.map((leaf) => leaf.path));
    const groups = new Set(commands.flatMap((leaf) => leafPrefixes(leaf.path)));
    const named = [...DOC.matchAll(/`recrypt ([a-z][a-z-]*(?: [a-z][a-z-]*)?)/g)].map(
      (match) => match[1]!,
    );
    const unknown = named.filter((name) => {
      const [first, second] = name.split(' ') as [string, string | undefined];
      if (!topLevel.has(first)) return true;
      // `recrypt start …`, `recrypt read message.eml`: a command, then its arguments.
      if (second === undefined || leafPaths.has(first)) return false;
      return !groups.has(name);
    });
    expect([...new Set(unknown)]).toEqual([]);
  });
});

function leafPrefixes(path: string): string[] {
  const words = path.split(' ');
  return words.map((_, i) => words.slice(0, i + 1).join(' '));
}
