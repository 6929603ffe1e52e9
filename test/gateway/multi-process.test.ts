/**
 * One gateway with `processes: 2` (docs/deployment.md "Several processes on one machine"):
 * `recrypt start` as a real process, its primary and two cluster workers, a real
 * redis-server as the key store, the embedded mail store in the primary. The README's
 * steps pass through it (user add, owner init, device add, mail by swaks, read by imaplib
 * and `openssl cms -decrypt`); IMAP, SMTP and HTTPS connections land on both workers (each
 * log line and metric names its worker); a device revoked through one worker loses its
 * sessions on both; a killed worker is replaced (after a doubled wait if it dies again);
 * SIGHUP reloads and SIGTERM stops every worker. The same with the default SQLite key
 * store: multi-process-sqlite.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import {
  expectReadmeSteps,
  expectRevocationOnBothWorkers,
  type ClusterGateway,
  type EnrolledUser,
} from '../helpers/cluster-cases.js';
import { clusterLog } from '../helpers/cluster-log.js';
import { waitFor, type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { fetchInbox, tryLogin } from '../helpers/scale-out-world.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'alice@example.org';
const tmp = tempDir('recrypt-multi-process-');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
let redis: RedisServer;
let ports: GatewayPorts;
let configFile: string;
let gateway: Spawned;
let alice: EnrolledUser;

const log = clusterLog(() => gateway);
const { lines: logLines, loggedBy, expectLoggedBy, readyWorkers } = log;
const world = (): ClusterGateway => ({ configFile, ports, certFile, scratch: tmp.path, log });

function curlStatus(path: string): string {
  return execFileSync(
    'curl',
    ['-s', '-o', '/dev/null', '--cacert', certFile, '-w', '%{http_code}', url(path)],
    { encoding: 'utf8' },
  );
}

const url = (path: string) => `https://127.0.0.1:${ports.operator}${path}`;

beforeAll(async () => {
  for (const name of ['curl', 'swaks', 'openssl', 'python3']) requireBinary(name);
  redis = await startRedis();
  ports = await freeGatewayPorts();
  configFile = writeGatewayConfig(tmp.path, ports, [
    'logLevel: info',
    'processes: 2',
    `keyStore: { kind: redis, url: "${redis.url}" }`,
  ]);
  gateway = await startGatewayProcess(configFile, ports);
}, 240_000);

afterAll(async () => {
  await gateway?.stop(20_000);
  await redis?.dispose();
  tmp.remove();
});

describe('one gateway, processes: 2', () => {
  it('runs a primary and two workers, every log line naming its process', () => {
    const workers = readyWorkers();
    expect(new Set(workers.map((w) => w.worker))).toEqual(new Set([1, 2]));
    expect(new Set(workers.map((w) => w.pid)).size).toBe(2);
    expect(loggedBy('gateway started')).toEqual(new Set(['primary', 'worker-1', 'worker-2']));
    const unnamed = logLines().filter((line) => line.process === undefined);
    expect(unnamed.map((line) => line.msg)).toEqual([]);
  });

  it('passes the README steps: enrol, mail by swaks, read by imaplib and openssl cms', async () => {
    alice = await expectReadmeSteps(world(), ADDRESS);
  }, 300_000);

  it('spreads IMAP, SMTP and HTTPS connections over both workers', async () => {
    for (let i = 0; i < 4; i++)
      expect(tryLogin(ports.imap, certFile, ADDRESS, alice.imapPassword)).toBe('OK');
    await expectLoggedBy('logged in', ['worker-1', 'worker-2']);

    for (let i = 0; i < 4; i++) {
      const raw = Buffer.from(`Subject: spread ${i}\r\n\r\nmessage ${i}\r\n`);
      const result = await sendWithNodemailer(
        ports.smtp,
        { from: 'bob@sender.example', to: [ADDRESS] },
        raw,
      );
      expect(result.ok, result.response).toBe(true);
    }
    await expectLoggedBy('message accepted', ['worker-1', 'worker-2']);

    // HTTPS requests to both workers; one scrape, whichever worker answers it, has every
    // worker's series, each labelled with its number.
    for (let i = 0; i < 6; i++) expect(curlStatus('/readyz')).toBe('200');
    const metrics = execFileSync('curl', ['-s', '--cacert', certFile, url('/metrics')], {
      encoding: 'utf8',
    });
    const readyzCounts = metrics
      .split('\n')
      .filter((line) => line.startsWith('recrypt_admin_requests_total{'))
      .filter((line) => line.includes('route="/readyz"'));
    const workers = new Set(readyzCounts.map((line) => /worker="(\d+)"/.exec(line)?.[1]));
    expect(workers, metrics).toEqual(new Set(['1', '2']));
    // The primary's own series beside them: the queue it delivers.
    expect(metrics).toMatch(/^recrypt_outbound_queue_size\{worker="primary"\} \d+$/m);
  }, 180_000);

  it('honours a revocation made through one worker on the other at once', async () => {
    await expectRevocationOnBothWorkers(world(), ADDRESS, alice);
  }, 240_000);

  it('replaces a killed worker, waiting longer for one that dies young, and serves', async () => {
    const victim = readyWorkers()[0]!;
    process.kill(victim.pid, 'SIGKILL');
    const newest = () => readyWorkers().at(-1)!;
    await waitFor('a new worker to be ready', () => newest().worker === 3, 120_000);
    // The replacement dies too, before it counts as healthy: the back-off doubles.
    process.kill(newest().pid, 'SIGKILL');
    await waitFor('another worker to be ready', () => newest().worker === 4, 120_000);
    const exits = logLines().filter(
      (line) => line.msg === 'worker process exited: starting another',
    );
    expect(exits.map((line) => [line.process, line.pid, line.restartInMs])).toEqual([
      ['primary', victim.pid, 250],
      ['primary', readyWorkers().find((w) => w.worker === 3)!.pid, 500],
    ]);
    expect(curlStatus('/readyz')).toBe('200');
    for (let i = 0; i < 4; i++)
      expect(fetchInbox(ports.imap, certFile, ADDRESS, alice.imapPassword)).toHaveLength(5);
    await waitFor('a login through the new worker', () => loggedBy('logged in').has('worker-4'));
  }, 300_000);

  it('reloads every worker on SIGHUP and stops every worker on SIGTERM', async () => {
    const killed = new Set(
      logLines()
        .filter((line) => line.msg === 'worker process exited: starting another')
        .map((line) => line.pid),
    );
    const running = readyWorkers()
      .filter((w) => !killed.has(w.pid))
      .map((w) => `worker-${w.worker}`);
    expect(running).toHaveLength(2);
    gateway.child.kill('SIGHUP');
    await expectLoggedBy('TLS certificate reloaded', running);
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    expect(loggedBy('stopped')).toEqual(new Set([...running, 'primary']));
  }, 180_000);
});
