/**
 * `recrypt user add … | head -1`: the reader goes away before the CLI has written
 * everything. The CLI must finish its work (the user exists), exit with its own status,
 * and print no EPIPE stack trace; so must the other printing commands (lists, tokens,
 * help). Through a real shell pipe to the real CLI.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliWorld, type CliWorld } from '../helpers/cli-flow.js';
import { cliCommand } from '../helpers/cli-command.js';

describe('CLI output into a pipe that closes early', () => {
  let world: CliWorld;

  beforeAll(async () => {
    world = await startCliWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  /**
   * Runs `recrypt <args> --config … | <reader>` in bash; the CLI's exit code, its stderr
   * and what the reader passed on. Asynchronous: the gateway answers from this process.
   */
  let runs = 0;

  async function piped(
    args: string[],
    reader: string,
  ): Promise<{ code: number; stderr: string; out: string }> {
    // Its own stderr file: the cases after the first run side by side.
    const errFile = `${world.root}/cli-stderr-${++runs}`;
    const cli = [...cliCommand(), ...args, '--config', world.configFile]
      .map((word) => `'${word.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const child = spawn(
      'bash',
      ['-c', `${cli} 2>"$ERRFILE" | ${reader}; echo "cli=\${PIPESTATUS[0]}"; cat "$ERRFILE"`],
      {
        cwd: world.root,
        env: { ...process.env, ERRFILE: errFile },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    await new Promise((resolve) => child.on('close', resolve));
    const code = /cli=(\d+)\n/.exec(stdout);
    expect(code).not.toBeNull();
    return {
      code: Number(code![1]),
      stderr: stdout.slice(code!.index + code![0].length),
      out: stdout.slice(0, code!.index),
    };
  }

  it('user add | head -1: first line out, the user added, no EPIPE trace, exit 0', async () => {
    const run = await piped(['user', 'add', 'pipe-one@example.org'], 'head -1');
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(run.code).toBe(0);
    expect(run.out.split('\n').filter((l) => l !== '')).toHaveLength(1);
    const list = await world.operator(['user', 'list']);
    expect(list.stdout).toContain('pipe-one@example.org');
  });

  // From here on the cases are independent of each other (the first made pipe-one): concurrent.
  it.concurrent(
    'user add | a reader that never reads: same (every write after the first fails)',
    async () => {
      const run = await piped(['user', 'add', 'pipe-two@example.org'], 'true');
      expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
      expect(run.code).toBe(0);
      const list = await world.operator(['user', 'list']);
      expect(list.stdout).toContain('pipe-two@example.org');
    },
  );

  it.concurrent.each([
    { args: ['user', 'list'], reader: 'head -1' },
    { args: ['user', 'list'], reader: 'true' },
    { args: ['user', 'token', 'pipe-one@example.org'], reader: 'head -1' },
    { args: ['user', '--help'], reader: 'head -1' },
    { args: ['device', '--help'], reader: 'true' },
  ])('$args.0 $args.1 | $reader: no EPIPE trace, exit 0', async ({ args, reader }) => {
    const run = await piped(args, reader);
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(run.code, run.stderr).toBe(0);
    if (reader === 'head -1') expect(run.out.split('\n').filter((l) => l !== '')).toHaveLength(1);
  });

  it.concurrent(
    'a real failure still reports and exits non-zero when stdout is closed',
    async () => {
      const run = await piped(['user', 'add', 'not an address'], 'true');
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/address/i);
      expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    },
  );
});
