/**
 * `recrypt bridge --keyring` on Linux (docs/bridge.md "The OS keyring"; src/bridge/
 * keyring.ts), with real parts: a D-Bus session from `dbus-run-session` with a real
 * `gnome-keyring-daemon` answering the Secret Service, `secret-tool` (what the bridge
 * calls, and what the test reads the keyring with), the `recrypt bridge` CLI as a process
 * and a real gateway (test/helpers/bridge-world.ts).
 *
 * Shown: the first `--keyring` start takes the passphrase and stores the cache key; the
 * next start opens the cache without any passphrase (and serves the decrypted mail),
 * where the same start without `--keyring` fails for want of one; with no D-Bus session
 * the bridge says the keyring is not available and uses the passphrase; a key in the
 * keyring that does not open the cache is reported, the passphrase is used, and the right
 * key is stored again.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  PASSPHRASE,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { requireBinary } from '../helpers/binaries.js';
import { bridgeServing, spawnBridge } from '../helpers/bridge-process.js';
import { cleanEnv, waitFor } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/tmp.js';

const BODY_MARKER = 'Keyringplaintextmarker';
const dir = tempDir('recrypt-bridge-keyring-');
const dataDir = join(dir.path, 'bridge-data');
const keyFile = join(dataDir, 'key.json');
let world: BridgeWorld;
let session: ChildProcess | undefined;
/** HOME, XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS of the keyring's session. */
let sessionEnv: Record<string, string> = {};
let localPassword = '';

/** A D-Bus session with gnome-keyring-daemon's Secret Service, its login keyring unlocked. */
async function startKeyringSession(): Promise<void> {
  requireBinary('dbus-run-session');
  requireBinary('gnome-keyring-daemon');
  requireBinary('secret-tool');
  const home = join(dir.path, 'home');
  const runtime = join(dir.path, 'run');
  mkdirSync(home, { recursive: true });
  mkdirSync(runtime, { recursive: true, mode: 0o700 });
  const base = { HOME: home, XDG_RUNTIME_DIR: runtime };
  session = spawn(
    'dbus-run-session',
    [
      '--',
      'sh',
      '-c',
      // The address first; then the daemon, unlocked with a password on stdin (it makes
      // the login keyring on first use); the session lives as long as the sleep.
      'echo "$DBUS_SESSION_BUS_ADDRESS"; printf %s keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null; echo ready; exec sleep 3600',
    ],
    { env: cleanEnv(base), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let out = '';
  session.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  session.stderr!.resume();
  await waitFor('the D-Bus session and keyring daemon', () => /\nready\n/.test(out), 30_000);
  sessionEnv = { ...base, DBUS_SESSION_BUS_ADDRESS: out.split('\n')[0]! };
}

/** `secret-tool` in the keyring's session. */
function secretTool(args: string[], input?: string): string {
  return execFileSync('secret-tool', args, {
    env: cleanEnv(sessionEnv),
    encoding: 'utf8',
    ...(input !== undefined ? { input } : {}),
  });
}

const lookupKey = () => secretTool(['lookup', 'service', 'recrypt-bridge', 'account', keyFile]);

/**
 * Runs `recrypt bridge` on the saved account until it serves (or exits), reads INBOX
 * through it, stops it; returns what it printed and whether it served.
 */
async function runCliBridge(
  args: string[],
  env: Record<string, string>,
): Promise<{ served: boolean; output: string; body: string }> {
  // No DISPLAY: secret-tool would try to start a D-Bus session for an X display.
  const child = spawnBridge(['--data-dir', dataDir, '--plain', '--imap-port', '0', ...args], {
    ...env,
    DISPLAY: '',
  });
  try {
    await bridgeServing(child);
    if (child.child.exitCode !== null) {
      await child.exited;
      return { served: false, output: child.output(), body: '' };
    }
    const port = Number(/^ {2}port: (\d+) \(no TLS; loopback only\)$/m.exec(child.output())?.[1]);
    const client = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      doSTARTTLS: false,
      auth: { user: ADDRESS, pass: localPassword },
      logger: false,
    });
    await client.connect();
    try {
      await waitFor('the first sync', async () =>
        withMailbox(
          client,
          'INBOX',
          async () => client.mailbox !== false && client.mailbox.exists > 0,
        ),
      );
      const message = await withMailbox(client, 'INBOX', () =>
        client.fetchOne('1', { source: true }),
      );
      return {
        served: true,
        output: child.output(),
        body: message === false ? '' : message.source!.toString(),
      };
    } finally {
      await client.logout();
    }
  } finally {
    child.child.kill('SIGTERM');
    await child.exited;
  }
}

beforeAll(async () => {
  // Independent of each other: started side by side.
  [, world] = await Promise.all([startKeyringSession(), startBridgeWorld(dir.path)]);
  await world.deliver('first message', `Hello Alice. ${BODY_MARKER} is in the body.\n`);
  // The account, made in-process with the passphrase (and the tests' fast scrypt).
  const bridge = await runBridge(world.options(dataDir, true));
  localPassword = bridge.account.localPassword;
  await bridge.close();
}, 120_000);

afterAll(async () => {
  await world?.close();
  if (session?.pid !== undefined) process.kill(-session.pid, 'SIGTERM');
  dir.remove();
});

describe('recrypt bridge --keyring (Secret Service)', () => {
  it('stores the cache key at the first --keyring start; the next start needs no passphrase', async () => {
    const first = await runCliBridge(['--keyring'], {
      ...sessionEnv,
      RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE,
    });
    expect(first.served, first.output).toBe(true);
    expect(first.output).not.toMatch(/keyring/i);
    expect(Buffer.from(lookupKey().trim(), 'base64')).toHaveLength(32);

    // Without the keyring the same start cannot open the cache: no passphrase is given.
    const without = await runCliBridge([], sessionEnv);
    expect(without.served).toBe(false);
    expect(without.output).toMatch(/passphrase/);

    const second = await runCliBridge(['--keyring'], sessionEnv);
    expect(second.served, second.output).toBe(true);
    expect(second.body).toContain(BODY_MARKER);
  });

  it('without a D-Bus session says the keyring is not available and uses the passphrase', async () => {
    const result = await runCliBridge(['--keyring'], {
      HOME: sessionEnv['HOME']!,
      DBUS_SESSION_BUS_ADDRESS: '',
      RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE,
    });
    expect(result.output).toMatch(
      /the OS keyring is not available \(the Secret Service \(secret-tool\): .+\); using the bridge passphrase/,
    );
    expect(result.served, result.output).toBe(true);
    expect(result.body).toContain(BODY_MARKER);
  });

  it('a key in the keyring that does not open the cache is reported, and replaced', async () => {
    const right = lookupKey().trim();
    secretTool(
      ['store', '--label=wrong', 'service', 'recrypt-bridge', 'account', keyFile],
      Buffer.alloc(32, 7).toString('base64'),
    );
    const result = await runCliBridge(['--keyring'], {
      ...sessionEnv,
      RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE,
    });
    expect(result.output).toContain('does not open this cache');
    expect(result.served, result.output).toBe(true);
    expect(lookupKey().trim()).toBe(right);
  });
});
