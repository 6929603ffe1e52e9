/**
 * Passphrases and passwords come from a terminal prompt without echo, or, for scripts,
 * from a file (`--passphrase-file`) or an environment variable; never from a command-line
 * value (it would sit in shell history and in every `ps` listing).
 */
import { readFileSync } from 'node:fs';
import { CliError } from './errors.js';

export interface SecretSource {
  /** What to call it in prompts and errors: "passphrase", ".p12 password". */
  what: string;
  envName: string;
  file?: string | undefined;
  /** Ask twice on a terminal (a new passphrase). */
  confirm?: boolean;
  env?: NodeJS.ProcessEnv;
}

function fromFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read the ${what} file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  const value = text.split(/\r?\n/)[0] ?? '';
  if (value.length === 0) throw new CliError(`the ${what} file ${path} is empty`);
  return value;
}

/** Reads one line from the terminal with echo off; Ctrl-C cancels. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new CliError('cancelled', 130));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    // Echo off before the prompt appears, so that nothing typed after it is echoed.
    stdin.setRawMode(true);
    process.stderr.write(question);
    stdin.resume();
    stdin.on('data', onData);
  });
}

export async function readSecret(source: SecretSource): Promise<string> {
  const env = source.env ?? process.env;
  if (source.file !== undefined) return fromFile(source.file, source.what);
  const fromEnv = env[source.envName];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  if (!process.stdin.isTTY) {
    throw new CliError(
      `no ${source.what}: run in a terminal, or set ${source.envName}, or pass a ${source.what} file`,
    );
  }
  const first = await promptHidden(`${source.what[0]!.toUpperCase()}${source.what.slice(1)}: `);
  if (first.length === 0) throw new CliError(`the ${source.what} is empty`);
  if (source.confirm === true) {
    const again = await promptHidden(`Repeat the ${source.what}: `);
    if (again !== first) throw new CliError(`the two ${source.what}s differ`);
  }
  return first;
}
