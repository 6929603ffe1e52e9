/**
 * The bridge's account against a real gateway (test/helpers/bridge-world.ts), through
 * real clients: when the gateway refuses the device (revoked with `recrypt device revoke`)
 * the bridge stops syncing and says so to every local session (`* OK [ALERT]`, and
 * `NO [UNAVAILABLE]` for changes), naming what to do (docs/bridge.md); and a later
 * `recrypt bridge` changes the account's gateway settings, saved only once the gateway
 * accepted them (docs/cli.md).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type BridgeOptions } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  P12_PASSWORD,
  PASSPHRASE,
  startBridgeWorld,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { cliCommand } from '../helpers/cli-command.js';
import { runCli } from '../helpers/cli-run.js';
import { cleanEnv, waitFor } from '../helpers/gateway-process.js';
import { ImaplibSession } from '../helpers/imaplib-session.js';
import { addDevice } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-bridge-account-');
let world: BridgeWorld;
const sessions: ImaplibSession[] = [];

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await world.deliver('first message', 'Hello Alice.\n');
}, 300_000);

afterAll(async () => {
  for (const session of sessions) session.close();
  await world?.close();
  dir.remove();
});

describe('recrypt bridge and its account', () => {
  it('tells every client when the gateway refuses the revoked device, and stops syncing', async () => {
    const device = await addDevice(
      world.gateway,
      ADDRESS,
      world.device.ownerDir,
      world.device.owner,
      'bridgebox',
    );
    const p12File = join(dir.path, 'bridgebox.p12');
    execFileSync('openssl', [
      'pkcs12',
      '-export',
      '-inkey',
      device.keyFile,
      '-in',
      device.certFile,
      '-out',
      p12File,
      '-passout',
      `pass:${P12_PASSWORD}`,
    ]);
    const base = world.options(join(dir.path, 'revoked-data'), true);
    const errors: string[] = [];
    const bridge = await runBridge({
      ...base,
      plainOnly: true,
      setup: {
        ...base.setup!,
        p12: new Uint8Array(readFileSync(p12File)),
        upstream: { ...base.setup!.upstream, password: device.password },
      },
      logger: {
        info: () => undefined,
        warn: () => undefined,
        error: (_details, message) => errors.push(message),
      },
    });
    try {
      const open = () =>
        ImaplibSession.open(bridge.imapPort, ADDRESS, bridge.account.localPassword, 'INBOX');
      const before = await open();
      sessions.push(before.session);
      expect(before.selected).toMatchObject({ typ: 'OK', exists: 1, alert: [] });

      const revoked = await world.device.owner(['device', 'revoke', 'bridgebox']);
      expect(revoked.code, revoked.stderr).toBe(0);

      // The session open since before hears it at its next command.
      let alert: string[] = [];
      await waitFor(
        'the ALERT in the open session',
        async () => {
          alert = (await before.session.send('noop')).alert ?? [];
          return alert.length > 0;
        },
        60_000,
      );
      expect(alert[0]).toContain('the gateway refuses this device');
      expect(alert[0]).toContain('recrypt bridge --device-password-file');
      expect(alert[0]).toContain('recrypt device join');
      // A change cannot reach the gateway: refused with the reason, not a silent failure.
      const store = await before.session.send('store');
      expect(store.event).toBe('no');
      expect(store.text).toContain('[UNAVAILABLE]');
      expect(store.text).toContain('the gateway refuses this device');

      // A session opened later is told at SELECT; the cached mail is still shown.
      const after = await open();
      sessions.push(after.session);
      expect(after.selected.exists).toBe(1);
      expect(after.selected.alert?.[0]).toContain('the gateway refuses this device');

      expect(errors.filter((e) => e.startsWith('bridge stopped:'))).toHaveLength(1);
      expect(bridge.watchedMailboxes()).toEqual([]);
    } finally {
      await bridge.close();
    }
  });

  it('`recrypt bridge --gateway … --device-password-file …` changes the saved account, only once the gateway accepts it', async () => {
    const dataDir = join(dir.path, 'settings-data');
    const options = (setup: boolean): BridgeOptions => ({
      ...world.options(dataDir, setup),
      plainOnly: true,
    });
    const first = await runBridge(options(true));
    expect(first.account.upstream).toMatchObject({
      port: world.gateway.ports.imap,
      tls: 'implicit',
    });
    await first.close();

    // The STARTTLS port of the same gateway, as if it had moved.
    const [node, ...prefix] = cliCommand();
    const child = spawn(
      node!,
      [
        ...prefix,
        'bridge',
        '--data-dir',
        dataDir,
        '--gateway',
        `127.0.0.1:${world.gateway.ports.starttls}`,
        '--gateway-starttls',
        '--plain',
        '--imap-port',
        '0',
        '--smtp-port',
        '0',
      ],
      {
        env: cleanEnv({ RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    try {
      await waitFor(
        'the bridge settings',
        () => out.includes('stop with Ctrl-C') || child.exitCode !== null,
        60_000,
      );
      expect(out).toContain(`bridge running for ${ADDRESS}`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);

    const moved = await runBridge(options(false));
    try {
      expect(moved.account.upstream).toMatchObject({
        port: world.gateway.ports.starttls,
        tls: 'starttls',
        password: world.device.password,
      });
      expect(moved.sync.mailboxes.get('INBOX')!.records()).toHaveLength(1);
    } finally {
      await moved.close();
    }

    // A wrong password is refused at the start, in words, and nothing is saved.
    const wrongFile = join(dir.path, 'wrong-password');
    writeFileSync(wrongFile, 'not the device password\n');
    const wrong = await runCli(
      ['bridge', '--data-dir', dataDir, '--device-password-file', wrongFile],
      {
        env: { RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE },
      },
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`refuses the login of ${ADDRESS}`);
    const kept = await runBridge(options(false));
    try {
      expect(kept.account.upstream.password).toBe(world.device.password);
      expect(kept.account.upstream.port).toBe(world.gateway.ports.starttls);
    } finally {
      await kept.close();
    }
  });
});
