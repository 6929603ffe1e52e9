/**
 * One `recrypt start` as the process-level tests run it: every listener on a free
 * loopback port, the embedded store, `./data` next to the config file, and "ready" meaning
 * the operator listener's /readyz answers 200. Tests add or replace config lines
 * (`hostname: …`, `admin: { …, rateLimit: … }`) rather than writing the whole file again.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli } from './cli-run.js';
import { startRecrypt, waitFor, type Spawned } from './gateway-process.js';
import { freePort } from './ports.js';

export interface GatewayPorts {
  smtp: number;
  imap: number;
  starttls: number;
  admin: number;
  operator: number;
  storeImap: number;
}

export async function freeGatewayPorts(): Promise<GatewayPorts> {
  return {
    smtp: await freePort(),
    imap: await freePort(),
    starttls: await freePort(),
    admin: await freePort(),
    operator: await freePort(),
    storeImap: await freePort(),
  };
}

/**
 * The config file's text: the defaults above, then `lines`; a line whose top-level key a
 * default has (`admin: { … }`) takes that default's place.
 */
export function gatewayConfigText(ports: GatewayPorts, lines: string[] = []): string {
  const defaults = [
    'dataDir: ./data',
    'logLevel: warn',
    `smtp: { host: 127.0.0.1, port: ${ports.smtp} }`,
    `imap: { host: 127.0.0.1, port: ${ports.imap}, starttlsPort: ${ports.starttls} }`,
    `admin: { port: ${ports.admin} }`,
    `operator: { port: ${ports.operator} }`,
    `mailStore: { kind: embedded, imapPort: ${ports.storeImap} }`,
  ];
  const keyOf = (line: string) => /^([A-Za-z]+):/.exec(line)?.[1];
  const replaced = new Set(lines.map(keyOf));
  return [...defaults.filter((line) => !replaced.has(keyOf(line))), ...lines].join('\n') + '\n';
}

/** Writes the config into `dir` (as `recrypt.yaml`) and returns its path. */
export function writeGatewayConfig(dir: string, ports: GatewayPorts, lines: string[] = []): string {
  const configFile = join(dir, 'recrypt.yaml');
  writeFileSync(configFile, gatewayConfigText(ports, lines));
  return configFile;
}

/** The status of GET /readyz on the operator listener, or null when nothing answers. */
function readyStatus(operatorPort: number): Promise<number | null> {
  return new Promise((resolve) => {
    // Readiness only: tests that care which certificate is served check it themselves.
    const req = request(
      { host: '127.0.0.1', port: operatorPort, path: '/readyz', rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? null);
      },
    );
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/** Waits for /readyz = 200; fails at once, with its output, if the gateway exits. */
export async function waitForGatewayReady(
  gateway: Spawned,
  operatorPort: number,
  // Generous: the machine running the suite may be busy; start-up is not measured here.
  timeoutMs = 150_000,
): Promise<void> {
  await waitFor(
    'the gateway to be ready',
    async () => {
      if (gateway.child.exitCode !== null) throw new Error(`gateway exited: ${gateway.output()}`);
      return (await readyStatus(operatorPort)) === 200;
    },
    timeoutMs,
  );
}

/** `recrypt start --config <configFile>` in the config's directory, once ready. */
export async function startGatewayProcess(
  configFile: string,
  ports: GatewayPorts,
  env: Record<string, string> = {},
): Promise<Spawned> {
  const gateway = startRecrypt(['--config', configFile], join(configFile, '..'), env);
  try {
    await waitForGatewayReady(gateway, ports.operator);
  } catch (error) {
    await gateway.stop(5000);
    throw error;
  }
  return gateway;
}

/**
 * A user with one device on a gateway started by `startGatewayProcess`, made as the README
 * walkthrough does: `user add` by the operator, then `owner init` and `device add` in
 * `<config dir>/owner` with a copy of the gateway's certificate. Each command must print
 * nothing on stderr. Returns the owner's directory, the device's IMAP password and its .p12.
 */
export async function enrolUserWithDevice(
  configFile: string,
  ports: GatewayPorts,
  address: string,
): Promise<{ ownerDir: string; imapPassword: string; p12File: string; p12Password: string }> {
  const dir = join(configFile, '..');
  const added = await runCli(['user', 'add', address, '--config', configFile], { cwd: dir });
  expect(added.stderr).toBe('');
  const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)![1]!;
  const ownerDir = join(dir, 'owner');
  mkdirSync(ownerDir);
  copyFileSync(join(dir, 'data', 'tls', 'cert.pem'), join(ownerDir, 'gateway-cert.pem'));
  const env = { RECRYPT_PASSPHRASE: 'correct horse battery staple' };
  const gatewayUrl = `https://127.0.0.1:${ports.admin}`;
  const init = await runCli(
    [
      'owner',
      'init',
      address,
      '--token',
      token,
      '--gateway',
      gatewayUrl,
      '--ca',
      'gateway-cert.pem',
    ],
    { cwd: ownerDir, env },
  );
  expect(init.stderr).toBe('');
  const device = await runCli(['device', 'add', 'laptop'], { cwd: ownerDir, env });
  expect(device.stderr).toBe('');
  const imapPassword = /^ {2}password \(shown once\): (\S+)$/m.exec(device.stdout)![1]!;
  const p12File = join(ownerDir, /certificate and key: (\S+)/.exec(device.stdout)![1]!);
  const p12Password = /\.p12 password \(shown once\): (\S+)/.exec(device.stdout)![1]!;
  return { ownerDir, imapPassword, p12File, p12Password };
}
