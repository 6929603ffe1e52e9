/**
 * What every multi-process gateway must pass whatever its key store (docs/deployment.md
 * "Several processes on one machine"), shared by multi-process.test.ts (Redis) and
 * multi-process-sqlite.test.ts (SQLite, where the primary relays what Redis shares).
 */
import { expect } from 'vitest';
import { runCli } from './cli-run.js';
import type { ClusterLog, LogLine } from './cluster-log.js';
import { waitFor } from './gateway-process.js';
import { enrolUserWithDevice, type GatewayPorts } from './gateway-instance.js';
import {
  decryptWith,
  deviceKeyFiles,
  fetchInbox,
  openSessionWaitingForBye,
  tryLogin,
} from './scale-out-world.js';
import { swaks } from './smtp-senders.js';

const PASSPHRASE = 'correct horse battery staple';
const BODY = 'Hello Alice, this is a test message.';

export interface ClusterGateway {
  configFile: string;
  ports: GatewayPorts;
  /** The gateway's self-signed certificate (what clients trust). */
  certFile: string;
  /** A scratch directory for the device's key files. */
  scratch: string;
  log: ClusterLog;
}

export type EnrolledUser = Awaited<ReturnType<typeof enrolUserWithDevice>>;

/** The README's steps: enrol with a device, mail by swaks, read by imaplib and openssl cms. */
export async function expectReadmeSteps(
  gateway: ClusterGateway,
  address: string,
): Promise<EnrolledUser> {
  const { configFile, ports, certFile } = gateway;
  const user = await enrolUserWithDevice(configFile, ports, address);
  const sent = await swaks([
    ...['--server', '127.0.0.1', '--port', String(ports.smtp)],
    ...['--from', 'bob@sender.example', '--to', address],
    ...['--header', 'Subject: hello', '--body', BODY],
  ]);
  expect(sent.code, sent.transcript).toBe(0);
  const messages = fetchInbox(ports.imap, certFile, address, user.imapPassword);
  expect(messages).toHaveLength(1);
  expect(messages[0]!.toString('latin1')).not.toContain(BODY);
  const keys = deviceKeyFiles(user.p12File, user.p12Password, gateway.scratch);
  expect(decryptWith(keys, messages[0]!).toString('utf8')).toContain(BODY);
  return user;
}

/**
 * A device revoked through one worker (the owner API lands on one) loses its sessions on
 * both at once, and cannot log in again.
 */
export async function expectRevocationOnBothWorkers(
  gateway: ClusterGateway,
  address: string,
  user: EnrolledUser,
): Promise<void> {
  const { ports, certFile, log } = gateway;
  const run = (args: string[]) =>
    runCli(args, { cwd: user.ownerDir, env: { RECRYPT_PASSPHRASE: PASSPHRASE } });
  const added = await run(['device', 'add', 'phone']);
  expect(added.stderr).toBe('');
  const phoneId = /\(id ([0-9a-f]+), client/.exec(added.stdout)![1]!;
  const phonePassword = /^ {2}password \(shown once\): (\S+)$/m.exec(added.stdout)![1]!;
  const isPhone = (line: LogLine) => line.device === phoneId;
  // Sessions until both workers hold one (the primary hands connections out in turn).
  const sessions = [];
  while (sessions.length < 6 && log.loggedBy('logged in', isPhone).size < 2) {
    sessions.push(await openSessionWaitingForBye(ports.imap, certFile, address, phonePassword));
    await waitFor(
      'the login to be logged',
      () => log.lines().filter(isPhone).length >= sessions.length,
    );
  }
  await log.expectLoggedBy('logged in', ['worker-1', 'worker-2'], isPhone);

  for (const session of sessions) session.armed();
  const revoked = await run(['device', 'revoke', 'phone']);
  expect(revoked.stdout).toContain('revoked');
  for (const session of sessions) expect(await session.result).toContain('BYE');
  await log.expectLoggedBy('device revoked: closing session', ['worker-1', 'worker-2']);
  for (let i = 0; i < 2; i++)
    expect(tryLogin(ports.imap, certFile, address, phonePassword)).toMatch(/^NO /);
}
