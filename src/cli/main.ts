#!/usr/bin/env node
/**
 * src/cli — the `recrypt` command (commander). Thin: each command parses its arguments,
 * builds options and calls a library (src/owner for the owner's side, ./operator for the
 * operator's); errors.ts turns every failure into one line and an exit code (1, or 2 for
 * usage). Subcommands live in ./commands/, each a module exporting `register(program)`.
 */
import { Command } from 'commander';
import { COMMANDS } from './commands/index.js';
import { reportError } from './errors.js';
import { VERSION } from './version.js';

export function buildProgram(): Command {
  const program = new Command('recrypt')
    .description('recryption mail gateway: operator and owner tools')
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError(true);
  for (const register of COMMANDS) register(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    return reportError(error);
  }
}

process.exitCode = await main(process.argv);
