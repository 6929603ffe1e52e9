/**
 * Runs the gateway the way an operator does: `recrypt start` as its own process (in its
 * own process group, so a test can stop it and everything it started), and a "fresh
 * clone" of the working tree for the README walkthrough.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliCommand } from './cli-command.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The environment without the caller's RECRYPT_* variables, which would change the config. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('RECRYPT_') && value !== undefined) env[name] = value;
  }
  env.npm_config_update_notifier = 'false';
  return { ...env, ...extra };
}

export interface Spawned {
  child: ChildProcess;
  output(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** SIGTERM to the whole process group, SIGKILL if it has not gone after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns `command` in its own process group, collecting stdout and stderr together. */
export function spawnGroup(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Spawned {
  const child = spawn(command, args, {
    ...options,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  let errText = '';
  child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    errText += chunk.toString('utf8');
  });
  // 'exit', not 'close': background children of a script keep the pipes open.
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const pgid = child.pid!;
  return {
    child,
    output: () => text,
    stderr: () => errText,
    exited,
    async stop(graceMs = 15_000) {
      if (!groupAlive(pgid)) return;
      signalGroup(pgid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
      if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
      while (groupAlive(pgid)) await sleep(50);
    },
  };
}

/** `recrypt start` from this run's build of the source tree (what `npm start` runs). */
export function startRecrypt(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Spawned {
  const [node, ...prefix] = cliCommand();
  return spawnGroup(node!, [...prefix, 'start', ...args], {
    cwd,
    env: cleanEnv(env),
  });
}

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `probe` resolves true, or fails naming what it waited for. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** True when nothing listens on host:port (we could bind it ourselves). */
export function portIsFree(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A stand-in for `git clone` + `npm ci`: the sources and build files of the working tree
 * copied to `dir`, with node_modules linked (the dependencies `npm ci` would install).
 */
export function freshClone(dir: string): void {
  for (const name of [
    'src',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'README.md',
  ]) {
    cpSync(join(ROOT, name), join(dir, name), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}
