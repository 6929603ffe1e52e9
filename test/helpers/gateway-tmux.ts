/**
 * A terminal for interactive programs (neomutt): a detached tmux session on its own
 * socket, driven with send-keys and read with capture-pane, the way a user would see it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { sleep } from './gateway-process.js';

export interface Terminal {
  /** Keys as tmux names them (`Enter`, `q`, …). */
  keys(...keys: string[]): void;
  /** Literal text, e.g. a passphrase; never echoed into test output by this helper. */
  type(text: string): void;
  /** The visible screen as text. */
  screen(): string;
  /** Waits until the screen contains `text`, or fails showing the last screen. */
  waitFor(text: string, timeoutMs?: number): Promise<string>;
  /** Kills the session and its server (and the program in it). */
  close(): void;
}

export function openTerminal(
  socket: string,
  command: string[],
  env: NodeJS.ProcessEnv,
  size = { columns: 200, rows: 50 },
): Terminal {
  // A session of our own on our own socket: never the user's tmux server.
  const tmux = (...args: string[]): string =>
    execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', env });
  tmux(
    'new-session',
    '-d',
    '-s',
    'main',
    '-x',
    String(size.columns),
    '-y',
    String(size.rows),
    '--',
    ...command,
  );
  let last = '';
  const screen = (): string => {
    last = tmux('capture-pane', '-p', '-t', 'main');
    return last;
  };
  return {
    keys: (...keys) => void tmux('send-keys', '-t', 'main', ...keys),
    type: (text) => void tmux('send-keys', '-t', 'main', '-l', text),
    screen,
    async waitFor(text, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        try {
          if (screen().includes(text)) return last;
        } catch {
          // the program exited and took the session with it
          break;
        }
        await sleep(200);
      }
      throw new Error(`timed out waiting for "${text}" on the terminal; last screen:\n${last}`);
    },
    close() {
      if (!existsSync(socket)) return;
      try {
        tmux('kill-server');
      } catch {
        // already gone
      }
    },
  };
}
