/**
 * `recrypt bridge` as a person runs it (docs/bridge.md, docs/cli.md), against a real
 * gateway (test/helpers/bridge-world.ts): a restart from the saved account prints the
 * client settings without the password, serves `--plain` loopback, writes the client
 * files; a wrong passphrase is one line and exit 1; and a bridge killed with SIGKILL
 * during its first sync resumes without duplicates or lost flags.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  P12_PASSWORD,
  PASSPHRASE,
  readClientFiles,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { cliCommand } from '../helpers/cli-command.js';
import { runCli } from '../helpers/cli-run.js';
import { cleanEnv, waitFor } from '../helpers/gateway-process.js';
import type { RunningTestGateway } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const BODY_MARKER = 'Cliplaintextmarker';

const dir = tempDir('recrypt-bridge-');
let world: BridgeWorld;
let gateway: RunningTestGateway;
let bridge: RunningBridge;
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

    const [node, ...prefix] = cliCommand();
    const autoconfig = join(dir.path, 'autoconfig.xml');
    const mobileconfig = join(dir.path, 'bridge.mobileconfig');
    const args = [
      'bridge',
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
    const child = spawn(node!, [...prefix, ...args, '--plain'], {
      env: cleanEnv({ RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
      expect(out).toMatch(/^ {2}server: 127\.0\.0\.1$/m);
      expect(out).toMatch(new RegExp(`^ {2}username: ${ADDRESS}$`, 'm'));
      expect(out).toMatch(
        /^outgoing \(SMTP\):\n {2}server: 127\.0\.0\.1\n {2}port: \d+ \(no TLS; loopback only\)$/m,
      );
      expect(out).toContain('password: the one shown at the first start');
      expect(out).not.toContain(bridge.account.localPassword);
      await waitFor('the client files', () => out.includes('Apple configuration profile:'));
      const imapPort = Number(/^ {2}port: (\d+) \(no TLS; loopback only\)$/m.exec(out)?.[1]);
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
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('recrypt bridge killed during its first sync', () => {
  const BULK = 150;

  it('resumes after kill -9: no duplicates, no lost flags, progress shown', async () => {
    const upstream = await proxyClient();
    try {
      await upstream.mailboxCreate('Bulk');
      for (let i = 1; i <= BULK; i++)
        await upstream.append(
          'Bulk',
          Buffer.from(`From: bob@sender.example\r\nSubject: bulk ${i}\r\n\r\nBulk body ${i}\r\n`),
        );
    } finally {
      await upstream.logout();
    }
    const killedDir = join(dir.path, 'bridge-killed');
    const [node, ...prefix] = cliCommand();
    const child = spawn(
      node!,
      [
        ...prefix,
        'bridge',
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
        env: cleanEnv({
          RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE,
          RECRYPT_P12_PASSWORD: P12_PASSWORD,
          RECRYPT_DEVICE_PASSWORD: world.device.password,
        }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    // Killed the moment the first progress line shows: 100 messages of the first sync to go.
    let out = '';
    const collect = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      if (/syncing Bulk: 50\/150 messages/.test(out)) child.kill('SIGKILL');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const exited = new Promise<string | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    expect(await exited, out).toBe('SIGKILL');
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

    const resumed = await runBridge({ ...bridgeOptions(true), dataDir: killedDir });
    try {
      const bulk = resumed.sync.mailboxes.get('Bulk')!;
      const uids = bulk.records().map((r) => r.uid);
      expect(uids).toEqual([...upstreamUids].sort((a, b) => a - b));
      const flaggedUids = bulk
        .records()
        .filter((r) => r.flags.includes('\\Flagged'))
        .map((r) => r.uid);
      expect(flaggedUids).toEqual(uids.slice(0, 3));
      expect(bulk.read(uids[BULK - 1]!).toString('utf8')).toContain(`Bulk body ${BULK}`);
    } finally {
      await resumed.close();
    }
  });
});
