/**
 * The real `recrypt start` serves two HTTPS audiences on two listeners (docs/admin-api.md):
 * the public one (owners, profiles, remote joins; rate-limited per client IP) and the
 * operator's (admin-token routes, /readyz, /metrics, optionally behind a token). A route
 * of the other audience answers 404 so the public listener does not advertise it.
 */
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli-run.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-listeners-');
const configFile = join(tmp.path, 'recrypt.yaml');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
const metricsTokenFile = join(tmp.path, 'metrics.token');
const METRICS_TOKEN = 'metrics-token-for-the-test';
const BURST = 20;
let ports: GatewayPorts;
let gateway: Spawned | undefined;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers,
        ca: readFileSync(certFile, 'utf8'),
        servername: 'localhost',
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

const adminToken = () =>
  `Bearer ${readFileSync(join(tmp.path, 'data', 'admin.token'), 'utf8').trim()}`;

beforeAll(async () => {
  ports = await freeGatewayPorts();
  writeFileSync(metricsTokenFile, `${METRICS_TOKEN}\n`, { mode: 0o600 });
  writeGatewayConfig(tmp.path, ports, [
    // A minute per token after the burst: the last test runs the bucket dry.
    `admin: { port: ${ports.admin}, rateLimit: { perMinute: 1, burst: ${BURST} } }`,
    `operator: { port: ${ports.operator}, metricsTokenFile: ${metricsTokenFile} }`,
  ]);
  gateway = await startGatewayProcess(configFile, ports);
}, 120_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('the operator listener', () => {
  it('serves the admin-token routes; the public listener answers 404 even with the token', async () => {
    const users = await call(ports.operator, 'GET', '/v1/users', { authorization: adminToken() });
    expect(users.status).toBe(200);
    expect(JSON.parse(users.body)).toEqual({ users: [] });
    for (const [method, path] of [
      ['GET', '/v1/users'],
      ['POST', '/v1/users'],
      ['POST', '/v1/users/alice%40example.org/token'],
      ['DELETE', '/v1/users/alice%40example.org'],
    ] as const) {
      const body = method === 'POST' ? '{}' : undefined;
      const reply = await call(ports.admin, method, path, { authorization: adminToken() }, body);
      expect({ method, path, status: reply.status }).toEqual({ method, path, status: 404 });
    }
  });

  it('serves /readyz and /metrics; the public listener does not', async () => {
    expect((await call(ports.operator, 'GET', '/readyz')).status).toBe(200);
    expect((await call(ports.admin, 'GET', '/readyz')).status).toBe(404);
    expect((await call(ports.admin, 'GET', '/metrics')).status).toBe(404);
    expect(
      (await call(ports.admin, 'GET', '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` }))
        .status,
    ).toBe(404);
  });

  it('asks for the metrics token when one is configured', async () => {
    const bare = await call(ports.operator, 'GET', '/metrics');
    expect(bare.status).toBe(401);
    expect(bare.headers['www-authenticate']).toBe('Bearer');
    const wrong = await call(ports.operator, 'GET', '/metrics', { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    const right = await call(ports.operator, 'GET', '/metrics', {
      authorization: `Bearer ${METRICS_TOKEN}`,
    });
    expect(right.status).toBe(200);
    expect(right.body).toContain('recrypt_admin_requests_total');
  });

  it('does not serve the owners routes or the profiles', async () => {
    expect((await call(ports.operator, 'POST', '/v1/enrol', {}, '{}')).status).toBe(404);
    expect((await call(ports.operator, 'GET', '/v1/owner')).status).toBe(404);
    expect(
      (await call(ports.operator, 'GET', '/.well-known/mail-profile/alice@example.org')).status,
    ).toBe(404);
  });
});

describe('the public listener', () => {
  it('is where user add points the owner, and where owner init enrols', async () => {
    const added = await runCli(['user', 'add', 'alice@example.org', '--config', configFile], {
      cwd: tmp.path,
    });
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toContain(`:${ports.admin}`);
    expect(added.stdout).not.toContain(`:${ports.operator}`);
    const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)![1]!;
    const owner = join(tmp.path, 'owner');
    mkdirSync(owner);
    copyFileSync(certFile, join(owner, 'gateway-cert.pem'));
    const init = await runCli(
      [
        'owner',
        'init',
        'alice@example.org',
        '--token',
        token,
        '--gateway',
        `https://127.0.0.1:${ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ],
      { cwd: owner, env: { RECRYPT_PASSPHRASE: 'listeners test passphrase' } },
    );
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const users = await call(ports.operator, 'GET', '/v1/users', { authorization: adminToken() });
    expect(JSON.parse(users.body).users[0]).toMatchObject({
      address: 'alice@example.org',
      enrolment: 'enrolled',
    });
  });

  it('answers 429 with Retry-After once a client IP has used its burst', async () => {
    const statuses: number[] = [];
    let limited: Reply | undefined;
    // Earlier tests spent some of the bucket (404s count too); at most BURST are left.
    for (let i = 0; i < BURST + 1 && limited === undefined; i++) {
      const reply = await call(ports.admin, 'GET', '/.well-known/mail-profile/nobody@example.org');
      statuses.push(reply.status);
      if (reply.status === 429) limited = reply;
    }
    expect(statuses).toContain(404);
    expect(limited?.status).toBe(429);
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The other unauthenticated routes share the bucket; health checks do not.
    expect((await call(ports.admin, 'POST', '/v1/enrol', {}, '{}')).status).toBe(429);
    expect((await call(ports.admin, 'GET', '/healthz')).status).toBe(200);
    // The operator listener has no limit.
    expect((await call(ports.operator, 'GET', '/readyz')).status).toBe(200);
  });
});
