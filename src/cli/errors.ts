/**
 * The one place errors become what a person sees: one line on stderr, exit code 1 (2 for
 * usage errors, which commander reports itself), never a stack trace. Known errors carry
 * messages written to be shown; anything else is summarised by its message only.
 */
import { CommanderError } from 'commander';
// Each error class from its own module, not its part's index: every command loads this
// file, and the indexes would load the key store adapters, X.509 and CMS with it.
import { ConfigError } from '../config/errors.js';
import { KeyStoreError } from '../keystore/errors.js';
import { OwnerError } from '../owner/errors.js';
import { ProfileError, ProfileFetchError } from '../profiles/errors.js';
import { RecryptError } from '../recrypt/errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure the CLI itself detects (bad option combination, missing file). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = EXIT_FAILURE,
  ) {
    super(message);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, '; ').trim();
}

/** The exit code for `error`, after writing what the person must see to `stderr`. */
export function reportError(
  error: unknown,
  stderr: NodeJS.WritableStream = process.stderr,
): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message (or the help/version it was asked for).
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (error instanceof ConfigError) {
    for (const problem of error.problems) stderr.write(`${problem}\n`);
    return EXIT_FAILURE;
  }
  if (error instanceof CliError) {
    stderr.write(`recrypt: ${oneLine(error.message)}\n`);
    return error.exitCode;
  }
  if (
    error instanceof OwnerError ||
    error instanceof KeyStoreError ||
    error instanceof ProfileError ||
    error instanceof ProfileFetchError ||
    error instanceof RecryptError
  ) {
    stderr.write(`recrypt: ${oneLine(error.message)}\n`);
    return EXIT_FAILURE;
  }
  const message = error instanceof Error ? error.message : String(error);
  stderr.write(`recrypt: unexpected error: ${oneLine(message)}\n`);
  return EXIT_FAILURE;
}
