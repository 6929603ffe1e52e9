/**
 * The config's one error: every problem found, one per line (load.ts writes them as
 * `file:line: path: what is wrong`). Apart from load.ts so that what only reports it (the
 * CLI's error output) does not load the YAML parser and the schema.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}
