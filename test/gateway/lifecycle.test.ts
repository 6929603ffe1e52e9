/**
 * `recrypt start` as a process, watched and signalled the way an operator would: health,
 * readiness and metrics with curl; SIGHUP swaps the TLS certificate on every listener
 * (openssl s_client sees the new one); SIGTERM during a load of SMTP deliveries and IMAP
 * fetches loses no acknowledged message and cuts no literal short; a second SIGTERM
 * exits at once.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { RawImap } from '../helpers/gateway-imap-raw.js';
import { sleep, waitFor, type Spawned } from '../helpers/gateway-process.js';
import {
  enrolUserWithDevice,
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-lifecycle-');
const configFile = join(tmp.path, 'recrypt.yaml');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
const ADDRESS = 'alice@example.org';
let ports: GatewayPorts;
let gateway: Spawned | undefined;
let imapPassword = '';

/** The operator listener by default: /readyz and /metrics are there (docs/admin-api.md). */
function curl(path: string, port = ports.operator): { status: number; body: string } {
  const out = execFileSync(
    'curl',
    ['-s', '--cacert', certFile, '-w', '\n%{http_code}', `https://127.0.0.1:${port}${path}`],
    { encoding: 'utf8' },
  );
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

const startGateway = () => startGatewayProcess(configFile, ports);

/** The error code of a TCP connection to `port` on loopback, or 'connected'. */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function storedText(): string {
  return filesUnder(join(tmp.path, 'data', 'mail'))
    .filter((f) => /\/(cur|new)\/[^/]+$/.test(f))
    .map((f) => readFileSync(f, 'latin1'))
    .join('\n');
}

/** The certificate's SHA-256 fingerprint as openssl s_client sees it on a port. */
function servedFingerprint(port: number, starttls?: 'smtp' | 'imap'): string {
  const pem = execFileSync(
    'sh',
    [
      '-c',
      `openssl s_client -connect 127.0.0.1:${port} ${starttls ? `-starttls ${starttls}` : ''} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`,
    ],
    { encoding: 'utf8' },
  );
  return pem.trim();
}

function sender(port: number) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    pool: false,
  });
}

beforeAll(async () => {
  for (const name of ['curl', 'openssl', 'sh']) requireBinary(name);
  ports = await freeGatewayPorts();
  writeGatewayConfig(tmp.path, ports);
  gateway = await startGateway();
  ({ imapPassword } = await enrolUserWithDevice(configFile, ports, ADDRESS));
}, 180_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('recrypt start, watched and signalled', () => {
  it('serves /healthz, /readyz (key store and mail store) and Prometheus /metrics', () => {
    expect(curl('/healthz')).toEqual({ status: 200, body: JSON.stringify({ status: 'ok' }) });
    const ready = curl('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', failing: [] });
    const metrics = curl('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^# TYPE recrypt_smtp_messages_total counter$/m);
    expect(metrics.body).toMatch(/^# TYPE imap_proxy_logins_total counter$/m);
    expect(metrics.body).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
  });

  it('/metrics counts every part: store LMTP and IMAP, admin routes, key store', async () => {
    // One of each: an SMTP delivery, an IMAP login and fetch through the proxy (the store
    // IMAP server sees the proxy's commands), and admin API requests (the setup's CLI).
    await sender(ports.smtp).sendMail({
      from: 'bob@sender.example',
      to: ADDRESS,
      subject: 'metrics',
      text: 'counted\r\n',
    });
    const reader = await RawImap.open(ports.imap, readFileSync(certFile, 'utf8'));
    try {
      expect(await reader.command(`LOGIN ${ADDRESS} "${imapPassword}"`)).toMatch(/^t\d+ OK/);
      expect(await reader.command('SELECT INBOX')).toMatch(/^t\d+ OK/);
      expect(await reader.command('FETCH 1 (BODY.PEEK[])')).toMatch(/^t\d+ OK/);
      expect(curl(`/.well-known/mail-profile/${ADDRESS}`, ports.admin).status).toBe(200);
      const body = curl('/metrics').body;
      const value = (series: string) => {
        const line = body.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? 0 : Number(line.slice(series.length + 1));
      };
      expect(value('recrypt_store_lmtp_deliveries_total{result="stored"}')).toBeGreaterThan(0);
      expect(value('recrypt_store_imap_connections')).toBeGreaterThan(0);
      expect(
        value('recrypt_store_imap_commands_total{command="FETCH",result="OK"}'),
      ).toBeGreaterThan(0);
      expect(
        value('recrypt_store_imap_commands_total{command="AUTHENTICATE",result="OK"}'),
      ).toBeGreaterThan(0);
      const admin = (method: string, route: string, status: number) =>
        value(
          `recrypt_admin_requests_total{method="${method}",route="${route}",status="${status}"}`,
        );
      expect(admin('POST', '/v1/users', 201)).toBeGreaterThan(0);
      expect(admin('POST', '/v1/enrol', 200)).toBeGreaterThan(0);
      expect(admin('POST', '/v1/owner/devices', 201)).toBeGreaterThan(0);
      expect(admin('GET', '/.well-known/mail-profile/:address', 200)).toBeGreaterThan(0);
      expect(
        value('recrypt_admin_requests_total{method="GET",route="/readyz",status="200"}'),
      ).toBeGreaterThan(0);
      expect(body).toMatch(/^# TYPE recrypt_keystore_unavailable_total counter$/m);
      expect(body).toMatch(/^imap_proxy_point_cache_lookups\{result="misses"\} \d+$/m);
      // Route patterns only: no address in any label.
      expect(body).not.toContain(ADDRESS);
      expect(body).not.toContain('alice%40');
    } finally {
      reader.close();
    }
  });

  it('SIGHUP reloads the TLS certificate for new connections on every listener', async () => {
    const before = servedFingerprint(ports.imap);
    const dir = join(tmp.path, 'data', 'tls');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '30',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const expected = execFileSync(
      'openssl',
      ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'],
      { encoding: 'utf8' },
    ).trim();
    expect(expected).not.toBe(before);
    gateway!.child.kill('SIGHUP');
    await waitFor(
      'the new certificate on the IMAP port',
      () => servedFingerprint(ports.imap) === expected,
      20_000,
    );
    expect(servedFingerprint(ports.starttls, 'imap')).toBe(expected);
    expect(servedFingerprint(ports.smtp, 'smtp')).toBe(expected);
    expect(servedFingerprint(ports.admin)).toBe(expected);
    expect(gateway!.child.exitCode).toBeNull();
  });

  let fetchedDuringShutdown: Array<{ complete: number; truncated: number }> = [];

  it('SIGTERM under load: every acknowledged message is stored', async () => {
    // Something to fetch: a few large messages (multi-chunk literals).
    const big = 'x'.repeat(76) + '\r\n';
    for (let i = 0; i < 4; i++) {
      await sender(ports.smtp).sendMail({
        from: 'bob@sender.example',
        to: ADDRESS,
        subject: `big ${i}`,
        text: big.repeat(4000),
      });
    }
    const ca = readFileSync(certFile, 'utf8');
    const readers = await Promise.all([0, 1, 2].map(() => RawImap.open(ports.imap, ca)));
    for (const reader of readers) {
      expect(await reader.command(`LOGIN ${ADDRESS} "${imapPassword}"`)).toMatch(/^t\d+ OK/);
      expect(await reader.command('SELECT INBOX')).toMatch(/^t\d+ OK/);
    }
    let signalled = false;
    const fetching = readers.map((reader) => reader.fetchLoop(4, () => false));

    const acked: string[] = [];
    const refused: string[] = [];
    const deliver = async (worker: number) => {
      const transport = sender(ports.smtp);
      for (let i = 0; i < 25; i++) {
        const messageId = `<load-${worker}-${i}-${Date.now()}@sender.example>`;
        try {
          await transport.sendMail({
            from: 'bob@sender.example',
            to: ADDRESS,
            subject: `load ${worker}/${i}`,
            text: `message ${worker}/${i}\r\n`.repeat(200),
            messageId,
          });
          acked.push(messageId);
        } catch {
          refused.push(messageId);
          if (signalled) return;
        }
        if (!signalled && acked.length >= 12) {
          signalled = true;
          gateway!.child.kill('SIGTERM');
        }
      }
    };
    await Promise.all([0, 1, 2].map((worker) => deliver(worker)));
    const code = await gateway!.exited;
    const fetched = await Promise.all(fetching);
    fetchedDuringShutdown = fetched;
    for (const reader of readers) reader.close();
    // Back up again with the same data (also for the tests after this one).
    const stopped = gateway!;
    gateway = await startGateway();
    expect(curl('/readyz').status).toBe(200);

    expect(signalled).toBe(true);
    expect(code, stopped.output()).toBe(0);
    expect(acked.length).toBeGreaterThanOrEqual(12);
    const stored = storedText();
    const lost = acked.filter((id) => !stored.includes(id));
    expect(lost).toEqual([]);
    expect(fetched.reduce((n, r) => n + r.complete, 0)).toBeGreaterThan(0);
  }, 180_000);

  it('SIGTERM under load: no IMAP client sees a literal cut short', () => {
    expect(fetchedDuringShutdown.length).toBe(3);
    expect(fetchedDuringShutdown.map((r) => r.truncated)).toEqual([0, 0, 0]);
  });

  it('a second SIGTERM exits at once, even with an SMTP transaction in flight', async () => {
    const socket = connect(ports.smtp, '127.0.0.1');
    socket.on('error', () => undefined);
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
    const expectReply = (code: string) =>
      waitFor(`SMTP ${code}`, () => new RegExp(`^${code} `, 'm').test(reply), 10_000).then(
        () => (reply = ''),
      );
    await expectReply('220');
    socket.write('EHLO client.example\r\n');
    await expectReply('250');
    socket.write('MAIL FROM:<bob@sender.example>\r\n');
    await expectReply('250');
    socket.write(`RCPT TO:<${ADDRESS}>\r\n`);
    await expectReply('250');
    socket.write('DATA\r\n');
    await expectReply('354');
    socket.write('Subject: never finished\r\n\r\nhalf a message\r\n');

    gateway!.child.kill('SIGTERM');
    await sleep(1500);
    // Still waiting for the DATA in flight to finish.
    expect(gateway!.child.exitCode).toBeNull();
    // Meanwhile every listener has stopped accepting, not only the MX.
    for (const port of [ports.smtp, ports.imap, ports.starttls, ports.admin, ports.operator])
      expect(await connectError(port)).toBe('ECONNREFUSED');
    gateway!.child.kill('SIGTERM');
    const code = await gateway!.exited;
    socket.destroy();
    expect(code).toBe(1);
    expect(gateway!.output()).toMatch(/second signal: exiting at once/);
  }, 60_000);
});
