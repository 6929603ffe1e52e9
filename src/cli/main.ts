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

/**
 * `recrypt … | head -1`: the reader may go away while the command still has work to do
 * (`user add` prints its token after the account exists). Node reports the broken pipe
 * as an 'error' event on stdout, fatal when unhandled; ignoring EPIPE lets the command
 * finish and exit with its own status, its further output discarded as a shell tool's is.
 */
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

process.exitCode = await main(process.argv);
