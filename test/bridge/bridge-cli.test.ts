/**
 * `recrypt bridge` as a person runs it (docs/bridge.md, docs/cli.md), against one real
 * gateway (test/helpers/bridge-world.ts): a restart from the saved account prints the
 * client settings without the password, serves `--plain` loopback, writes the client
 * files; a wrong passphrase is one line and exit 1; a later `recrypt bridge` changes the
 * account's gateway settings, saved only once the gateway accepted them; when the gateway
 * refuses the device (revoked with `recrypt device revoke`) the bridge stops syncing and
 * says so to every local session (`* OK [ALERT]`, and `NO [UNAVAILABLE]` for changes),
 * naming what to do; and a bridge killed with SIGKILL during its first sync resumes
 * without duplicates or lost flags, a message file no state entry lists removed.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type BridgeOptions, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  exportP12,
  fillMailbox,
  P12_PASSWORD,
  PASSPHRASE,
  readClientFiles,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { bridgeServing, spawnBridge } from '../helpers/bridge-process.js';
import { runCli } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/gateway-process.js';
import { ImaplibSession } from '../helpers/imaplib-session.js';
import type { RunningTestGateway } from '../helpers/submission-world.js';
import { addDevice } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const BODY_MARKER = 'Cliplaintextmarker';

const dir = tempDir('recrypt-bridge-');
let world: BridgeWorld;
let gateway: RunningTestGateway;
let bridge: RunningBridge;
const sessions: ImaplibSession[] = [];
const dataDir = join(dir.path, 'bridge-data');
const deliver = (subject: string, text: string) => world.deliver(subject, text);
const proxyClient = () => world.proxyClient();
const bridgeOptions = (setup: boolean) => world.options(dataDir, setup);

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  gateway = world.gateway;
  await deliver('first message', `Hello Alice. ${BODY_MARKER} is in the body.\n`);
  // The first start, in-process: the CLI tests start from its saved account.
  bridge = await runBridge(bridgeOptions(true));
  await bridge.close();
}, 120_000);

afterAll(async () => {
  for (const session of sessions) session.close();
  await world?.close();
  dir.remove();
});

describe('recrypt bridge', () => {
  it('`recrypt bridge` starts from the saved account, prints the client settings, and serves plain loopback with --plain', async () => {
    const wrong = await runCli(['bridge', '--data-dir', dataDir], {
      env: { RECRYPT_BRIDGE_PASSPHRASE: 'not the passphrase' },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('recrypt: wrong bridge passphrase (the cache does not open)\n');

    const autoconfig = join(dir.path, 'autoconfig.xml');
    const mobileconfig = join(dir.path, 'bridge.mobileconfig');
    const args = [
      '--data-dir',
      dataDir,
      '--imap-port',
      '0',
      '--smtp-port',
      '0',
      '--autoconfig',
      autoconfig,
      '--mobileconfig',
      mobileconfig,
    ];
    const child = spawnBridge([...args, '--plain'], { RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE });
    try {
      await bridgeServing(child);
      const out = child.output();
      expect(out).toContain(`bridge running for ${ADDRESS}`);
      expect(out).toMatch(/^ {2}server: 127\.0\.0\.1$/m);
      expect(out).toMatch(new RegExp(`^ {2}username: ${ADDRESS}$`, 'm'));
      expect(out).toMatch(
        /^outgoing \(SMTP\):\n {2}server: 127\.0\.0\.1\n {2}port: \d+ \(no TLS; loopback only\)$/m,
      );
      expect(out).toContain('password: the one shown at the first start');
      expect(out).not.toContain(bridge.account.localPassword);
      await waitFor('the client files', () =>
        child.output().includes('Apple configuration profile:'),
      );
      const imapPort = Number(
        /^ {2}port: (\d+) \(no TLS; loopback only\)$/m.exec(child.output())?.[1],
      );
      const client = new ImapFlow({
        host: '127.0.0.1',
        port: imapPort,
        secure: false,
        doSTARTTLS: false,
        auth: { user: ADDRESS, pass: bridge.account.localPassword },
        logger: false,
      });
      await client.connect();
      try {
        const message = await withMailbox(client, 'INBOX', () =>
          client.fetchOne('1', { source: true }),
        );
        expect(message === false ? '' : message.source!.toString('utf8')).toContain(BODY_MARKER);
      } finally {
        await client.logout();
      }
      const files = await readClientFiles(autoconfig, mobileconfig);
      expect(files.thunderbird).toEqual({
        incoming: ['imap', '127.0.0.1', String(imapPort), 'plain', ADDRESS],
        outgoing: ['smtp', '127.0.0.1', expect.stringMatching(/^\d+$/), 'plain', ADDRESS],
      });
      expect(files.apple.type).toBe('Configuration');
      expect(files.apple.payloads).toEqual([
        expect.objectContaining({
          PayloadType: 'com.apple.mail.managed',
          EmailAccountType: 'EmailTypeIMAP',
          IncomingMailServerHostName: '127.0.0.1',
          IncomingMailServerPortNumber: imapPort,
          IncomingMailServerUseSSL: false,
          IncomingMailServerUsername: ADDRESS,
        }),
      ]);
      for (const text of [readFileSync(autoconfig, 'utf8'), readFileSync(mobileconfig, 'utf8')])
        expect(text).not.toContain(bridge.account.localPassword);
    } finally {
      child.child.kill('SIGTERM');
    }
    expect((await child.exited).code).toBe(0);
  });
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
    const p12File = exportP12(device, join(dir.path, 'bridgebox.p12'));
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
          // Every NOOP is answered OK: the bridge keeps serving (a BYE fails here, with its text).
          const answer = await before.session.send('noop');
          expect(answer, JSON.stringify(answer)).toMatchObject({ event: 'ok' });
          alert = answer.alert ?? [];
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
    const child = spawnBridge(
      [
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
      { RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE },
    );
    try {
      await bridgeServing(child);
      expect(child.output()).toContain(`bridge running for ${ADDRESS}`);
    } finally {
      child.child.kill('SIGTERM');
    }
    expect((await child.exited).code, child.output()).toBe(0);

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

describe('recrypt bridge killed during its first sync', () => {
  const BULK = 150;

  it('resumes after kill -9: no duplicates, no lost flags, progress shown', async () => {
    await fillMailbox(world, 'Bulk', BULK);
    const killedDir = join(dir.path, 'bridge-killed');
    // Killed the moment the first progress line shows: 100 messages of the first sync to go.
    const child = spawnBridge(
      [
        '--data-dir',
        killedDir,
        '--p12',
        world.p12File,
        '--address',
        ADDRESS,
        '--gateway',
        `127.0.0.1:${gateway.ports.imap}`,
        '--ca',
        gateway.certFile,
        '--imap-port',
        '0',
        '--imaps-port',
        '0',
      ],
      {
        RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE,
        RECRYPT_P12_PASSWORD: P12_PASSWORD,
        RECRYPT_DEVICE_PASSWORD: world.device.password,
      },
      {
        detached: true,
        onOutput: (out, bridgeChild) => {
          if (/syncing Bulk: 50\/150 messages/.test(out)) bridgeChild.kill('SIGKILL');
        },
      },
    );
    expect((await child.exited).signal, child.output()).toBe('SIGKILL');
    // The account is saved once the gateway accepted the login, before the first sync
    // (docs/bridge.md): the kill came during that sync.
    expect(existsSync(join(killedDir, 'account.bin'))).toBe(true);

    const flagged = await proxyClient();
    try {
      await withMailbox(flagged, 'Bulk', () => flagged.messageFlagsAdd('1:3', ['\\Flagged']));
    } finally {
      await flagged.logout();
    }
    const upstreamUids: number[] = await (async () => {
      const client = await proxyClient();
      try {
        const found = await withMailbox(client, 'Bulk', () =>
          client.search({ all: true }, { uid: true }),
        );
        return found === false ? [] : (found ?? []);
      } finally {
        await client.logout();
      }
    })();
    expect(upstreamUids).toHaveLength(BULK);

    // And a message file as a kill leaves one (written, never listed by a save): removed
    // at the restart, and counted in the log (docs/bridge.md).
    const messagesDir = join(killedDir, 'cache', 'messages');
    const orphan = join(messagesDir, readdirSync(messagesDir)[0]!, '1.999999');
    writeFileSync(orphan, 'left by a kill');
    const logged: string[] = [];
    const resumed = await runBridge({
      ...bridgeOptions(true),
      dataDir: killedDir,
      logger: {
        info: (details, message) => logged.push(`${message} ${JSON.stringify(details)}`),
        warn: () => undefined,
        error: () => undefined,
      },
    });
    expect(existsSync(orphan)).toBe(false);
    expect(logged.find((line) => line.startsWith('bridge cache repaired at open'))).toMatch(
      /"orphanFilesRemoved":[1-9]/,
    );
    try {
      const bulk = resumed.sync.mailboxes.get('Bulk')!;
      const uids = bulk.records().map((r) => r.uid);
      expect(uids).toEqual([...upstreamUids].sort((a, b) => a - b));
      const flaggedUids = bulk
        .records()
        .filter((r) => r.flags.includes('\\Flagged'))
        .map((r) => r.uid);
      expect(flaggedUids).toEqual(uids.slice(0, 3));
      expect(bulk.read(uids[BULK - 1]!).toString('utf8')).toContain(`Bulk ${BULK}`);
    } finally {
      await resumed.close();
    }
  });
});
