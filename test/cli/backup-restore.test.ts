/**
 * `recrypt backup` and `recrypt restore` (docs/operations.md, "Backup and restore"), with
 * real parts only: a running gateway (`recrypt start`) with an enrolled owner, a device
 * and a delivered message is backed up while it runs; the backup is restored into a
 * fresh data directory; a gateway started there serves the old message through the
 * proxy to Python's imaplib with the old device password, and `openssl cms` decrypts it
 * with the device key from the old .p12. A non-empty target and a tampered backup are
 * refused.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/cli/operator/backup-manifest.js';
import { requireBinary } from '../helpers/binaries.js';
import { parseDeviceAdd, type AddedDeviceOutput } from '../helpers/cli-flow.js';
import { runCli } from '../helpers/cli-run.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-backup-');
const ADDRESS = 'alice@example.org';
const SECRET_LINE = 'the old message, read after a restore';
const FETCH_SCRIPT = new URL('../fixtures/imap/imaplib-fetch.py', import.meta.url).pathname;
const backupDir = join(tmp.path, 'backup');
const owner = join(tmp.path, 'owner');

interface Site {
  configFile: string;
  dataDir: string;
  ports: GatewayPorts;
}

let original: Site;
let device: AddedDeviceOutput;
let running: Spawned | undefined;

async function site(name: string): Promise<Site> {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  const ports = await freeGatewayPorts();
  const configFile = writeGatewayConfig(dir, ports);
  return { configFile, dataDir: join(dir, 'data'), ports };
}

function certOf(at: Site): string {
  return join(at.dataDir, 'tls', 'cert.pem');
}

function start(at: Site): Promise<Spawned> {
  return startGatewayProcess(at.configFile, at.ports);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? [path, ...filesUnder(path)] : [path];
  });
}

function modesUnder(dir: string): Set<string> {
  return new Set(
    filesUnder(dir).map((path) => {
      const info = statSync(path);
      return `${info.isDirectory() ? 'dir' : 'file'} ${(info.mode & 0o777).toString(8)}`;
    }),
  );
}

beforeAll(async () => {
  for (const name of ['curl', 'openssl', 'python3']) requireBinary(name);
  original = await site('original');
  running = await start(original);
  const added = await runCli(['user', 'add', ADDRESS, '--config', original.configFile]);
  expect(added.stderr).toBe('');
  const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)![1]!;
  mkdirSync(owner);
  copyFileSync(certOf(original), join(owner, 'gateway-cert.pem'));
  const env = { RECRYPT_PASSPHRASE: 'correct horse battery staple' };
  const init = await runCli(
    [
      'owner',
      'init',
      ADDRESS,
      '--token',
      token,
      '--gateway',
      `https://127.0.0.1:${original.ports.admin}`,
      '--ca',
      'gateway-cert.pem',
    ],
    { cwd: owner, env },
  );
  expect(init.stderr).toBe('');
  const added2 = await runCli(['device', 'add', 'laptop'], { cwd: owner, env });
  expect(added2.stderr).toBe('');
  device = parseDeviceAdd(added2.stdout, owner);
  await nodemailer
    .createTransport({ host: '127.0.0.1', port: original.ports.smtp, ignoreTLS: true })
    .sendMail({
      from: 'bob@sender.example',
      to: ADDRESS,
      subject: 'before the backup',
      text: `${SECRET_LINE}\r\n`,
    });
}, 300_000);

afterAll(async () => {
  await running?.stop(5000);
  tmp.remove();
});

describe('recrypt backup and restore', () => {
  it('backs up a running gateway: key store snapshot, keys, tokens, TLS, config, mail', async () => {
    const result = await runCli(['backup', backupDir, '--config', original.configFile]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^backup written to /);
    expect(result.stdout).toMatch(/^skipped: store-lmtp\.sock /m);

    const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest).toMatchObject({
      format: 'recrypt-backup',
      version: 1,
      keyStore: 'sqlite',
      mailStore: 'embedded',
      notIncluded: [],
    });
    const paths = manifest.files.map((f) => f.path);
    for (const path of [
      'keystore.sqlite',
      'admin.token',
      'recrypt.yaml',
      'data/gateway.key',
      'data/store-master.secret',
      'data/tls/key.pem',
      'data/tls/cert.pem',
    ])
      expect(paths).toContain(path);
    const messages = paths.filter((p) => /^data\/mail\/[^/]+\/Maildir\/(cur|new)\//.test(p));
    expect(messages).toHaveLength(1);
    expect(paths.some((p) => p.endsWith('/Maildir/dovecot-uidlist'))).toBe(true);
    // The index and the point cache are caches, the socket is not state, the SQLite side
    // files are folded in.
    expect(paths.filter((p) => /recrypt-index|point-cache|\.sock$|-wal$|-shm$/.test(p))).toEqual(
      [],
    );
    expect(modesUnder(backupDir)).toEqual(new Set(['dir 700', 'file 600']));
    expect(statSync(backupDir).mode & 0o777).toBe(0o700);
    // Every file of the backup is in the manifest, and nothing else.
    const onDisk = filesUnder(backupDir)
      .filter((p) => statSync(p).isFile())
      .map((p) => p.slice(backupDir.length + 1))
      .filter((p) => p !== 'manifest.json')
      .sort();
    expect(onDisk).toEqual([...paths].sort());
  }, 120_000);

  // The restore and the two refusals only read the backup and each writes its own site:
  // side by side (the refusals run while the restored gateway starts).
  it.concurrent(
    'restores into a fresh data directory: the old device reads the old message',
    async () => {
      await running?.stop(5000);
      running = undefined;
      const restored = await site('restored');
      const result = await runCli(['restore', backupDir, '--config', restored.configFile]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^restored \d+ file\(s\) into /);
      expect(modesUnder(restored.dataDir)).toEqual(new Set(['dir 700', 'file 600']));
      expect(readFileSync(join(restored.dataDir, 'gateway.key'))).toEqual(
        readFileSync(join(original.dataDir, 'gateway.key')),
      );

      running = await start(restored);
      const out = join(tmp.path, 'fetched');
      mkdirSync(out);
      execFileSync('python3', [
        FETCH_SCRIPT,
        'ssl',
        '127.0.0.1',
        String(restored.ports.imap),
        certOf(restored),
        ADDRESS,
        device.devicePassword,
        out,
        'BODY.PEEK[]',
      ]);
      const fetched = readdirSync(out).filter((n) => n.endsWith('-0.bin'));
      expect(fetched).toHaveLength(1);
      const pass = `pass:${device.p12Password}`;
      const key = join(owner, 'laptop.key');
      const cert = join(owner, 'laptop.crt');
      execFileSync(
        'openssl',
        ['pkcs12', '-in', device.p12File, '-passin', pass, '-nodes'].concat([
          '-nocerts',
          '-out',
          key,
        ]),
      );
      execFileSync(
        'openssl',
        ['pkcs12', '-in', device.p12File, '-passin', pass, '-nodes'].concat([
          '-clcerts',
          '-nokeys',
          '-out',
          cert,
        ]),
      );
      const plain = execFileSync('openssl', [
        'cms',
        '-decrypt',
        '-in',
        join(out, fetched[0]!),
        '-recip',
        cert,
        '-inkey',
        key,
      ]).toString('utf8');
      expect(plain).toContain('Subject: before the backup');
      expect(plain).toContain(SECRET_LINE);
    },
    300_000,
  );

  it.concurrent(
    'refuses a data directory that is not empty',
    async () => {
      const busy = await site('busy');
      mkdirSync(busy.dataDir);
      writeFileSync(join(busy.dataDir, 'something'), 'kept\n');
      const result = await runCli(['restore', backupDir, '--config', busy.configFile]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^recrypt: the data directory .* is not empty/);
      expect(readdirSync(busy.dataDir)).toEqual(['something']);
    },
    120_000,
  );

  it.concurrent(
    'refuses a backup whose file differs from its manifest, writing nothing',
    async () => {
      const tampered = join(tmp.path, 'tampered');
      cpSync(backupDir, tampered, { recursive: true });
      const keyFile = join(tampered, 'data', 'gateway.key');
      const bytes = readFileSync(keyFile);
      bytes[0] = bytes[0]! ^ 1;
      writeFileSync(keyFile, bytes);
      const target = await site('from-tampered');
      const result = await runCli(['restore', tampered, '--config', target.configFile]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^recrypt: the backup .* fails its manifest check: data\/gateway\.key: content differs/,
      );
      expect(existsSync(target.dataDir)).toBe(false);
    },
    120_000,
  );
});
