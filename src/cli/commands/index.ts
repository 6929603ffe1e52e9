/**
 * Every `recrypt` subcommand module; each exports `register(program)` and registers the
 * top-level commands listed for it in COMMAND_MODULES. A command loads only its own module
 * (and what that imports): `recrypt user add` does not load the MX, the proxy and the ACME
 * client that `recrypt start` needs, which would cost every short command a second of CPU.
 * Without a known command (`recrypt`, `recrypt --help`, a typo), every module is loaded,
 * so help and suggestions see them all. Add a module by listing its commands here
 * (test/cli/command-modules.test.ts checks the table against what each module registers).
 */
import type { Command } from 'commander';

export interface CommandModule {
  register(program: Command): void;
}

const operator = () => import('./operator.js');
const owner = () => import('./owner.js');
const backup = () => import('./backup.js');

export const COMMAND_MODULES: Readonly<Record<string, () => Promise<CommandModule>>> = {
  init: operator,
  user: operator,
  queue: operator,
  config: operator,
  backup,
  restore: backup,
  list: () => import('./list.js'),
  lookup: () => import('./lookup.js'),
  keys: () => import('./keys.js'),
  owner,
  device: owner,
  profile: owner,
  smimea: owner,
  read: owner,
  start: () => import('./start.js'),
  bridge: () => import('./bridge.js'),
};

/** Registers the module of `argv`'s command, or every module when it names none. */
export async function registerCommands(program: Command, argv: readonly string[]): Promise<void> {
  const name = argv[2];
  const loaders =
    name !== undefined && Object.hasOwn(COMMAND_MODULES, name)
      ? [COMMAND_MODULES[name]!]
      : [...new Set(Object.values(COMMAND_MODULES))];
  for (const load of loaders) (await load()).register(program);
}
