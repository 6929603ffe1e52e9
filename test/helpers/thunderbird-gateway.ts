/**
 * The gateway side of the Thunderbird test, set up the way an operator and an owner do it:
 * `recrypt start` on free loopback ports with the embedded store, `user add`, `owner init`
 * with the printed token, `device add` (its .p12, .p12 password and device password
 * parsed from what it prints), and mail delivered to the MX over SMTP.
 */
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { expect } from 'vitest';
import { parseDeviceAdd, PASSPHRASE, type AddedDeviceOutput } from './cli-flow.js';
import { runCli } from './cli-run.js';
import { startRecrypt, type Spawned } from './gateway-process.js';
import { freeGatewayPorts, waitForGatewayReady, writeGatewayConfig } from './gateway-instance.js';

/**
 * The owner's commands derive keys (scrypt, PKCS#12 PBKDF2): on two cores shared with other
 * test runs they can take far longer than runCli's default allows.
 */
const CLI_TIMEOUT_MS = 150_000;
const STARTUP_TIMEOUT_MS = 180_000;

export interface ThunderbirdGateway {
  address: string;
  imapPort: number;
  /** The generated self-signed TLS certificate (PEM) every listener serves. */
  certPem: string;
  device: AddedDeviceOutput;
  /** What `owner init` printed as the owner fingerprint (UDF): the owner CA's name. */
  ownerFingerprint: string;
  /** Delivers one message to the MX; resolves when the MX said 250. */
  deliver(message: Mail.Options): Promise<void>;
  /** The stored (never recrypted) copies in the embedded store's Maildir. */
  storedFiles(): string[];
  stop(): Promise<void>;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

export async function startThunderbirdGateway(
  dir: string,
  address: string,
): Promise<ThunderbirdGateway> {
  const ports = await freeGatewayPorts();
  const configFile = writeGatewayConfig(dir, ports);
  const certFile = join(dir, 'data', 'tls', 'cert.pem');
  const gateway: Spawned = startRecrypt(['--config', configFile], dir);
  try {
    const origin = `https://127.0.0.1:${ports.admin}`;
    await waitForGatewayReady(gateway, ports.operator, STARTUP_TIMEOUT_MS);
    const added = await runCli(['user', 'add', address, '--config', configFile], {
      cwd: dir,
      timeoutMs: CLI_TIMEOUT_MS,
    });
    expect(added.stderr).toBe('');
    const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)![1]!;
    const owner = join(dir, 'owner');
    mkdirSync(owner);
    copyFileSync(certFile, join(owner, 'gateway-cert.pem'));
    const env = { RECRYPT_PASSPHRASE: PASSPHRASE };
    const args = ['owner', 'init', address, '--token', token, '--gateway', origin];
    const init = await runCli([...args, '--ca', 'gateway-cert.pem'], {
      cwd: owner,
      env,
      timeoutMs: CLI_TIMEOUT_MS,
    });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const ownerFingerprint = /^owner fingerprint \(UDF\): (\S+)$/m.exec(init.stdout)?.[1];
    expect(ownerFingerprint, init.stdout).toBeDefined();
    const added2 = await runCli(['device', 'add', 'thunderbird', '--client', 'standard'], {
      cwd: owner,
      env,
      timeoutMs: CLI_TIMEOUT_MS,
    });
    expect(added2.stderr).toBe('');
    expect(added2.code).toBe(0);
    const device = parseDeviceAdd(added2.stdout, owner);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: ports.smtp,
      secure: false,
      ignoreTLS: true,
      pool: false,
    });
    return {
      address,
      imapPort: ports.imap,
      certPem: readFileSync(certFile, 'utf8'),
      device,
      ownerFingerprint: ownerFingerprint!,
      async deliver(message) {
        const info = await transport.sendMail(message);
        expect(info.response).toMatch(/^250 /);
      },
      storedFiles: () =>
        filesUnder(join(dir, 'data', 'mail')).filter((f) => /\/(cur|new)\/[^/]+$/.test(f)),
      stop: () => gateway.stop(5000),
    };
  } catch (error) {
    await gateway.stop(2000);
    throw error;
  }
}
