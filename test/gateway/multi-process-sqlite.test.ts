/**
 * One gateway with `processes: 2` on the default SQLite key store (docs/deployment.md
 * "Several processes on one machine"): `recrypt start` as a real process, its primary and
 * two cluster workers, the embedded mail store in the primary. What Redis shares between
 * processes, the primary holds here over cluster IPC, and this proves it with real
 * clients: the README's steps pass (user add, owner init, device add, mail by swaks, read
 * by imaplib and `openssl cms -decrypt`); a device revoked through one worker's admin API
 * loses its IMAP sessions on both; bad logins spread over both workers meet one count (the
 * back-off grows as for one process), and a login waiting on a primary that does not
 * answer is refused for now; the admin rate limit is one bucket for both; a
 * moderated post is held in the data directory for every worker, and the notice a worker
 * queues is sent once, by the primary, to a real SMTP server; and /metrics serves the
 * primary's own series (store, queue) beside the workers'.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { runCli } from '../helpers/cli-run.js';
import {
  expectReadmeSteps,
  expectRevocationOnBothWorkers,
  type ClusterGateway,
  type EnrolledUser,
} from '../helpers/cluster-cases.js';
import { clusterLog, type LogLine } from '../helpers/cluster-log.js';
import type { Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { swaks } from '../helpers/smtp-senders.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'alice@example.org';
const PASSPHRASE = 'correct horse battery staple';
/** The admin rate limit's bucket: a token a minute after it, so a run never refills it much. */
const BURST = 10;
const tmp = tempDir('recrypt-multi-process-sqlite-');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
let ports: GatewayPorts;
let configFile: string;
let gateway: Spawned;
let alice: EnrolledUser;
/** The remote MX the outbound queue reaches for remote.test. */
let remote: RemoteMx;

const log = clusterLog(() => gateway);
const { lines: logLines, expectLoggedBy, readyWorkers } = log;
const world = (): ClusterGateway => ({ configFile, ports, certFile, scratch: tmp.path, log });

function scrape(): string {
  return execFileSync(
    'curl',
    ['-s', '--cacert', certFile, `https://127.0.0.1:${ports.operator}/metrics`],
    { encoding: 'utf8' },
  );
}

/**
 * One IMAP LOGIN on a connection of its own from `source` (a loopback address of its own,
 * so its failure counts touch no other test's): the tagged reply and how long it took.
 */
function imapLogin(
  source: string,
  user: string,
  password: string,
  /** Runs once the greeting is in, before LOGIN is sent. */
  beforeLogin: () => void = () => undefined,
): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      socket: netConnect({ host: '127.0.0.1', port: ports.imap, localAddress: source }),
      ca: readFileSync(certFile),
      checkServerIdentity: () => undefined,
    });
    let text = '';
    let sentAt = 0;
    socket.setTimeout(60_000, () => socket.destroy(new Error('IMAP login timed out')));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (sentAt === 0 && text.includes('\r\n')) {
        beforeLogin();
        sentAt = Date.now();
        socket.write(`a1 LOGIN "${user}" "${password}"\r\n`);
      }
      const reply = /^a1 .*$/m.exec(text)?.[0];
      if (reply !== undefined) {
        resolve({ reply: reply.trim(), ms: Date.now() - sentAt });
        socket.destroy();
      }
    });
  });
}

/** The status of one GET on the public admin listener, on a connection of its own from `source`. */
function publicGet(source: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: ports.admin,
        path,
        localAddress: source,
        agent: false,
        ca: readFileSync(certFile),
        checkServerIdentity: () => undefined,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  for (const name of ['curl', 'swaks', 'openssl', 'python3']) requireBinary(name);
  ports = await freeGatewayPorts();
  remote = await RemoteMx.start({ port: await freePort() });
  configFile = writeGatewayConfig(tmp.path, ports, [
    'logLevel: info',
    'processes: 2',
    `admin: { port: ${ports.admin}, rateLimit: { perMinute: 1, burst: ${BURST} } }`,
    `outbound: { routes: { remote.test: "127.0.0.1:${remote.port}" } }`,
  ]);
  gateway = await startGatewayProcess(configFile, ports);
}, 240_000);

afterAll(async () => {
  await gateway?.stop(20_000);
  await remote?.close();
  tmp.remove();
});

describe('one gateway, processes: 2, the SQLite key store', () => {
  it('runs a primary and two workers on the SQLite key store', () => {
    expect(new Set(readyWorkers().map((w) => w.worker))).toEqual(new Set([1, 2]));
    const started = logLines().filter((line) => line.msg === 'gateway started');
    expect(new Set(started.map((line) => line.process))).toEqual(
      new Set(['primary', 'worker-1', 'worker-2']),
    );
    for (const line of started) expect(line.keyStore).toBe('sqlite');
  });

  it('passes the README steps: enrol, mail by swaks, read by imaplib and openssl cms', async () => {
    alice = await expectReadmeSteps(world(), ADDRESS);
  }, 300_000);

  it("serves the primary's own series (store, queue) beside the workers'", () => {
    const metrics = scrape().split('\n');
    const series = (name: string) =>
      new Set(
        metrics
          .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
          .map((line) => /worker="([^"]+)"/.exec(line)?.[1]),
      );
    // The one delivery went into the primary's embedded store through its LMTP socket.
    expect(series('recrypt_store_lmtp_deliveries_total')).toEqual(new Set(['primary']));
    // The queue is delivered by the primary: its depth is the primary's alone.
    expect(series('recrypt_outbound_queue_size')).toEqual(new Set(['primary']));
    expect(series('process_resident_memory_bytes')).toEqual(new Set(['primary', '1', '2']));
  });

  it('ends the sessions on both workers of a device revoked through one', async () => {
    await expectRevocationOnBothWorkers(world(), ADDRESS, alice);
  }, 240_000);

  it('holds a post in the data directory for every worker; the primary sends the notice a worker queued', async () => {
    const run = (args: string[]) =>
      runCli(args, { cwd: alice.ownerDir, env: { RECRYPT_PASSPHRASE: PASSPHRASE } });
    const list = 'mods@example.org';
    expect((await run(['list', 'create', list, '--policy', 'moderated'])).code).toBe(0);
    const sent = await swaks([
      ...['--server', '127.0.0.1', '--port', String(ports.smtp)],
      ...['--from', 'late@remote.test', '--to', list],
      ...['--header', 'Subject: to be rejected', '--body', 'off topic'],
    ]);
    expect(sent.code, sent.transcript).toBe(0);
    const held = (await run(['list', 'held', list])).stdout;
    const id = /\b([0-9a-f]{32})\b/.exec(held)![1]!;
    // The owner's request reaches one worker, which queues the notice in the queue
    // directory; only the primary sends, once.
    const rejected = await run(['list', 'reject', list, id, '--reason', 'off topic']);
    expect(rejected.stdout).toContain('late@remote.test has been told');
    await remote.waitFor(1, 60_000);
    expect(remote.received.map((mail) => mail.to)).toEqual([['late@remote.test']]);
    await expectLoggedBy('outbound message delivered', ['primary']);
    // Rejected: gone from the data directory (record and message).
    expect(readdirSync(join(tmp.path, 'data', 'held', list))).toEqual([]);
  }, 120_000);

  it('counts bad logins spread over both workers as one: the back-off grows', async () => {
    // Six failures one after the other, handed to the workers in turn. Counted per worker
    // (three each) none would wait: three are free. Counted together the fourth waits
    // 0.5 s, the fifth 1 s, the sixth 2 s.
    const attempts = [];
    for (let i = 0; i < 6; i++)
      attempts.push(await imapLogin('127.0.0.3', 'mallory@example.org', `guess-${i}`));
    for (const attempt of attempts) expect(attempt.reply).toMatch(/^a1 NO /);
    expect(attempts[5]!.ms).toBeGreaterThanOrEqual(2000);
    const delayed = (line: LogLine) => typeof line.delayMs === 'number';
    await expectLoggedBy('login delayed after failed attempts', ['worker-1', 'worker-2'], delayed);
    const delays = logLines()
      .filter((line) => line.msg === 'login delayed after failed attempts')
      .map((line) => line.delayMs);
    expect(delays).toEqual([500, 1000, 2000]);
  }, 120_000);

  it('refuses a login for now while the primary does not answer (fail closed)', async () => {
    // A connection a worker already holds; then the primary stops answering (SIGSTOP:
    // alive, connected, silent) while the worker asks it for the failure counts.
    const primaryPid = gateway.child.pid!;
    try {
      const attempt = await imapLogin('127.0.0.4', ADDRESS, alice.imapPassword, () =>
        process.kill(primaryPid, 'SIGSTOP'),
      );
      expect(attempt.reply).toMatch(/^a1 NO \[UNAVAILABLE\]/);
      expect(attempt.ms).toBeGreaterThanOrEqual(1900);
    } finally {
      process.kill(primaryPid, 'SIGCONT');
    }
    // Answering again: the same login goes through.
    expect((await imapLogin('127.0.0.4', ADDRESS, alice.imapPassword)).reply).toMatch(/^a1 OK /);
  }, 60_000);

  it('takes the admin rate limit from one bucket for both workers', async () => {
    // Twice the burst from a client of its own: one bucket lets the burst through, one
    // per worker would let through twice as many.
    const statuses = [];
    for (let i = 0; i < 2 * BURST; i++) statuses.push(await publicGet('127.0.0.2', '/v1/none'));
    const allowed = statuses.filter((status) => status !== 429).length;
    expect(allowed, statuses.join(' ')).toBeGreaterThanOrEqual(BURST);
    expect(allowed, statuses.join(' ')).toBeLessThanOrEqual(BURST + 1);
    // Both workers refused some: each took from the same, empty bucket.
    const refusedBy = new Set(
      scrape()
        .split('\n')
        .filter((line) => line.startsWith('recrypt_admin_requests_total{'))
        .filter((line) => line.includes('status="429"'))
        .map((line) => /worker="(\d+)"/.exec(line)?.[1]),
    );
    expect(refusedBy).toEqual(new Set(['1', '2']));
  }, 120_000);
});
