/**
 * Real mail clients pointed at the device bridge, with no S/MIME set-up of any kind
 * (docs/bridge.md, "Client settings"): curl, mbsync and neomutt, each given only the
 * bridge's host, port, user, local password and the bridge's own certificate to trust.
 * Also a second device of the same user reading through the gateway's proxy, which is
 * "another device" for the flag tests (its own device password and key).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import type { RunningBridge } from '../../src/bridge/bridge.js';
import { requireBinary } from './binaries.js';
import { ADDRESS, type BridgeWorld } from './bridge-world.js';
import { cleanEnv } from './gateway-process.js';
import { openTerminal, type Terminal } from './gateway-tmux.js';
import { addDevice, type Device } from './submission-world.js';

const run = promisify(execFile);

/** A second device ("phone") of the bridge's user, made by `recrypt device add`. */
export function addSecondDevice(world: BridgeWorld, name = 'phone'): Promise<Device> {
  return addDevice(world.gateway, ADDRESS, world.device.ownerDir, world.device.owner, name);
}

/** imapflow through the gateway's proxy as `device`: what that device's own client sees. */
export async function proxyClientAs(world: BridgeWorld, device: Device): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: world.gateway.ports.imap,
    secure: true,
    tls: { ca: readFileSync(world.gateway.certFile, 'utf8') },
    auth: { user: device.address, pass: device.password },
    logger: false,
  });
  await client.connect();
  return client;
}

/**
 * curl against the bridge: `url` is a path after `imaps://127.0.0.1:<TLS port>` (or, with
 * `starttls`, `imap://` on the STARTTLS port with --ssl-reqd). Returns stdout; a non-zero
 * exit rejects with curl's stderr. `-X` gives a custom command (curl prints its untagged
 * answer). Never blocks the event loop: the bridge answers from this process.
 */
export async function curlBridge(
  bridge: RunningBridge,
  path: string,
  options: { starttls?: boolean; command?: string } = {},
): Promise<string> {
  const url =
    options.starttls === true
      ? `imap://127.0.0.1:${bridge.imapPort}${path}`
      : `imaps://127.0.0.1:${bridge.imapsPort}${path}`;
  const args = [
    '--silent',
    '--show-error',
    '--max-time',
    '60',
    '--cacert',
    bridge.certFile!,
    '--user',
    `${ADDRESS}:${bridge.account.localPassword}`,
    ...(options.starttls === true ? ['--ssl-reqd'] : []),
    ...(options.command !== undefined ? ['--request', options.command] : []),
    url,
  ];
  const { stdout } = await run(requireBinary('curl'), args, {
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 16 << 20,
  });
  return stdout;
}

/**
 * An mbsync configuration syncing `patterns` of the bridge (STARTTLS port, the bridge's
 * certificate) with a local Maildir under `dir`, both ways, expunges included.
 */
export function writeMbsyncConfig(
  dir: string,
  bridge: RunningBridge,
  patterns: string,
): { config: string; maildir: string } {
  const maildir = join(dir, 'Mail');
  const config = join(dir, 'mbsyncrc');
  // mbsync creates the folders, not the store's root
  mkdirSync(maildir, { recursive: true });
  writeFileSync(
    config,
    [
      'IMAPAccount bridge',
      'Host 127.0.0.1',
      `Port ${bridge.imapPort}`,
      `User ${ADDRESS}`,
      // the local password is made like device passwords: no quotes or spaces (account.ts)
      `Pass ${bridge.account.localPassword}`,
      'AuthMechs PLAIN',
      'SSLType STARTTLS',
      `CertificateFile ${bridge.certFile!}`,
      '',
      'IMAPStore remote',
      'Account bridge',
      '',
      'MaildirStore local',
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      'SubFolders Verbatim',
      '',
      'Channel sync',
      'Far :remote:',
      'Near :local:',
      `Patterns ${patterns}`,
      'Create Both',
      'Expunge Both',
      'Sync All',
      'SyncState *',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { config, maildir };
}

/** One `mbsync -a` run (HOME = `home`, so no user configuration is read). */
export async function mbsync(config: string, home: string): Promise<string> {
  const { stdout, stderr } = await run(requireBinary('mbsync'), ['-c', config, '-a'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: cleanEnv({ HOME: home }),
  });
  return stdout + stderr;
}

/**
 * neomutt in a tmux terminal with a configuration naming only the bridge (IMAPS port, its
 * certificate in `certificate_file`): no S/MIME or GPG setting at all. `-n`: no system-wide
 * neomuttrc either.
 */
export function openNeomutt(dir: string, bridge: RunningBridge): Terminal {
  for (const name of ['neomutt', 'tmux']) requireBinary(name);
  const muttrc = join(dir, 'neomuttrc');
  writeFileSync(
    muttrc,
    [
      `set imap_user = "${ADDRESS}"`,
      `set imap_pass = "${bridge.account.localPassword}"`,
      `set folder = "imaps://localhost:${bridge.imapsPort}/"`,
      'set spoolfile = "+INBOX"',
      `set certificate_file = "${bridge.certFile!}"`,
      // no questions on leaving: the test ends neomutt by killing its terminal
      'set quit = yes',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const env = cleanEnv({ HOME: dir, TMPDIR: dir });
  delete env.TMUX;
  return openTerminal(join(dir, 'tmux.sock'), ['neomutt', '-n', '-F', muttrc], env);
}
