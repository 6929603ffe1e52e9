/**
 * One mailbox behind a real `recrypt start` (embedded store, SQLite key store) for the
 * rotation tests: the operator's `user add`, the owner's `owner init` and `device add`
 * through the real CLI; mail in over SMTP (nodemailer); mail out through the proxy as a
 * device (Python's imaplib over TLS), read with `openssl cms -decrypt` and the device's
 * own .p12.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { expect } from 'vitest';
import { parseDeviceAdd } from './cli-flow.js';
import { runCli, type CliResult } from './cli-run.js';
import type { Spawned } from './gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from './gateway-instance.js';
import { tempDir } from './tmp.js';
import { privateKeyObject, toPem, type Scalar } from '../../src/recrypt/index.js';

const run = promisify(execFile);

export const PASSPHRASE = 'correct horse battery staple';

/** A PEM file holding a group's certificate and secret, as `openssl cms -decrypt` takes it. */
export function groupPem(
  dir: string,
  name: string,
  secret: Scalar,
  certificate: Uint8Array,
): string {
  const file = join(dir, `${name}.pem`);
  const key = privateKeyObject(secret).export({ format: 'pem', type: 'pkcs8' }) as string;
  writeFileSync(file, `${toPem(certificate)}${key}`, { mode: 0o600 });
  return file;
}

export interface WorldDevice {
  name: string;
  id: string;
  devicePassword: string;
  p12File: string;
  p12Password: string;
  /** The device's certificate and key, PEM (from its .p12). */
  pem: string;
}

export interface RotationWorld {
  address: string;
  root: string;
  ownerDir: string;
  ports: GatewayPorts;
  certFile: string;
  gateway: Spawned;
  owner(args: string[], env?: Record<string, string>): Promise<CliResult>;
  addDevice(name: string): Promise<WorldDevice>;
  send(subject: string, body: string): Promise<void>;
  /** A message as it is (e.g. one its sender encrypted). */
  sendRaw(message: Buffer): Promise<void>;
  /** Every message of INBOX through the proxy as `device`, in UID order. */
  fetchAll(device: Pick<WorldDevice, 'devicePassword'>): Promise<Buffer[]>;
  /** The plaintext, or null when the device's key does not open it. */
  decrypt(device: Pick<WorldDevice, 'pem'>, message: Buffer): Promise<string | null>;
  close(): Promise<void>;
}

export function ok(result: CliResult): string {
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

const FETCH_ALL = [
  'import imaplib, ssl, sys, os',
  'ctx = ssl.create_default_context(cafile=sys.argv[1])',
  'ctx.check_hostname = False',
  "m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[2]), ssl_context=ctx)",
  'm.login(sys.argv[3], sys.argv[4])',
  "m.select('INBOX', readonly=True)",
  "typ, data = m.uid('SEARCH', None, 'ALL')",
  'for uid in data[0].split():',
  "    typ, parts = m.uid('FETCH', uid, '(BODY.PEEK[])')",
  "    open(os.path.join(sys.argv[5], '%010d.eml' % int(uid)), 'wb').write(parts[0][1])",
  'm.logout()',
].join('\n');

export async function startRotationWorld(address: string): Promise<RotationWorld> {
  const tmp = tempDir('recrypt-rotation-');
  const configFile = join(tmp.path, 'recrypt.yaml');
  const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
  const ownerDir = join(tmp.path, 'owner');
  const ports = await freeGatewayPorts();
  writeGatewayConfig(tmp.path, ports, ['logLevel: info']);
  const gateway = await startGatewayProcess(configFile, ports);
  const owner = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { cwd: ownerDir, env: { RECRYPT_PASSPHRASE: PASSPHRASE, ...env } });
  const added = ok(
    await runCli(['user', 'add', address, '--config', configFile], { cwd: tmp.path }),
  );
  const token = /enrolment token .*: (\S+)$/m.exec(added)![1]!;
  mkdirSync(ownerDir);
  copyFileSync(certFile, join(ownerDir, 'gateway-cert.pem'));
  ok(
    await owner([
      'owner',
      'init',
      address,
      '--token',
      token,
      '--gateway',
      `https://127.0.0.1:${ports.admin}`,
      '--ca',
      'gateway-cert.pem',
    ]),
  );
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: ports.smtp,
    secure: false,
    ignoreTLS: true,
  });
  let fetches = 0;
  return {
    address,
    root: tmp.path,
    ownerDir,
    ports,
    certFile,
    gateway,
    owner,
    async addDevice(name) {
      const out = parseDeviceAdd(ok(await owner(['device', 'add', name])), ownerDir);
      const pem = join(ownerDir, `${name}.pem`);
      execFileSync('openssl', [
        'pkcs12',
        '-in',
        out.p12File,
        '-passin',
        `pass:${out.p12Password}`,
        '-nodes',
        '-out',
        pem,
      ]);
      return {
        name,
        id: out.id,
        devicePassword: out.devicePassword,
        p12File: out.p12File,
        p12Password: out.p12Password,
        pem,
      };
    },
    async send(subject, body) {
      await transport.sendMail({ from: 'eve@sender.example', to: address, subject, text: body });
    },
    async sendRaw(message) {
      await transport.sendMail({
        envelope: { from: 'eve@sender.example', to: [address] },
        raw: message,
      });
    },
    async fetchAll(device) {
      const dir = join(tmp.path, `fetch-${++fetches}`);
      mkdirSync(dir);
      await run('python3', [
        '-c',
        FETCH_ALL,
        certFile,
        String(ports.imap),
        address,
        device.devicePassword,
        dir,
      ]);
      return readdirSync(dir)
        .sort()
        .map((file) => readFileSync(join(dir, file)));
    },
    async decrypt(device, message) {
      const file = join(tmp.path, `in-${++fetches}.eml`);
      writeFileSync(file, message);
      try {
        const { stdout } = await run('openssl', [
          'cms',
          '-decrypt',
          '-in',
          file,
          '-recip',
          device.pem,
          '-inkey',
          device.pem,
        ]);
        return stdout;
      } catch {
        return null;
      }
    },
    async close() {
      transport.close();
      await gateway.stop(5000);
      tmp.remove();
    },
  };
}
