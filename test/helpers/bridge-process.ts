/**
 * `recrypt bridge` run as a person runs it: the CLI as its own process (this run's build,
 * test/helpers/cli-command.ts) with a clean environment, its stdout and stderr collected
 * together, and a wait for the settings it prints once it serves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cliCommand } from './cli-command.js';
import { cleanEnv, waitFor } from './gateway-process.js';

export interface BridgeProcess {
  child: ChildProcess;
  /** Everything printed so far, stdout and stderr together. */
  output(): string;
  /** The exit code and signal, once the output is complete. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `recrypt bridge …args` with `env` (RECRYPT_* variables only from there).
 * `onOutput` sees the whole output after every chunk (to act the moment a line shows);
 * `detached`: in its own process group.
 */
export function spawnBridge(
  args: string[],
  env: Record<string, string>,
  options: {
    onOutput?: (output: string, child: ChildProcess) => void;
    detached?: boolean;
  } = {},
): BridgeProcess {
  const [node, ...prefix] = cliCommand();
  const child = spawn(node!, [...prefix, 'bridge', ...args], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached === true,
  });
  let out = '';
  const collect = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    options.onOutput?.(out, child);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  // 'close': after the exit and the end of its output, so `output()` is then complete.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => out, exited };
}

/** Waits until the bridge printed its settings (it serves), or exited. */
export function bridgeServing(bridge: BridgeProcess): Promise<void> {
  return waitFor(
    'the bridge settings',
    () => bridge.output().includes('stop with Ctrl-C') || bridge.child.exitCode !== null,
    60_000,
  );
}
