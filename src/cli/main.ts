#!/usr/bin/env node
/**
 * src/cli — the `recrypt` command (commander). Thin: each command parses its arguments,
 * builds options and calls a library (src/owner for the owner's side, ./operator for the
 * operator's); errors.ts turns every failure into one line and an exit code (1, or 2 for
 * usage). Subcommands live in ./commands/, each a module exporting `register(program)`.
 */
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';
import { reportError } from './errors.js';
import { VERSION } from './version.js';

/** The `recrypt` program with the commands `argv` needs (src/cli/commands/index.ts). */
async function buildProgram(argv: readonly string[]): Promise<Command> {
  const program = new Command('recrypt')
    .description('recryption mail gateway: operator and owner tools')
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError(true);
  await registerCommands(program, argv);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
    await program.parseAsync(argv);
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
