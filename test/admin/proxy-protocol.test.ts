/**
 * The public HTTPS listener behind a load balancer that speaks the PROXY protocol
 * (admin.proxyProtocol): curl (--haproxy-protocol, v1) and a Node HTTPS client playing
 * the balancer (v1 and v2 before the ClientHello). The per-IP rate limit keys on the
 * header's client: one client over its burst gets 429 while another through the same
 * balancer is still served. Without a header, or from a peer that is not a trusted
 * balancer, there is no TLS handshake at all, and a log line says why.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:https';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { loadOrCreateGatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { ADMIN_TOKEN } from '../helpers/cli-api.js';
import { headerInFirstWrite, proxyV1, proxyV2 } from '../helpers/proxy-protocol-client.js';
import { tempDir } from '../helpers/tmp.js';

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  }),
);
const logged = (msg: string): Record<string, unknown>[] => lines.filter((l) => l.msg === msg);

const PROFILE = '/.well-known/mail-profile/nobody@example.org';

/** curl's exit code and the HTTP status it got (000: none). */
function curl(port: number, extra: string[]): Promise<{ code: number; status: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(requireBinary('curl'), [
      '-s',
      '-k',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '60',
      ...extra,
      `https://127.0.0.1:${port}${PROFILE}`,
    ]);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, status: out.trim() }));
  });
}

/** A GET through a connection that starts with `header`, as the balancer would relay it. */
async function getVia(port: number, header: Buffer): Promise<number> {
  const raw = connect(port, '127.0.0.1');
  await once(raw, 'connect');
  const secure = tlsConnect({ socket: headerInFirstWrite(raw, header), rejectUnauthorized: false });
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: PROFILE, createConnection: () => secure },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('public HTTPS listener with the PROXY protocol', () => {
  const dir = tempDir('recrypt-admin-proxy-');
  let keyStore: KeyStore;
  let trustedServer: AdminServer;
  let otherServer: AdminServer;

  beforeAll(async () => {
    keyStore = await openKeyStore(
      { kind: 'sqlite', path: 'keystore.sqlite' },
      { gatewayKey: loadOrCreateGatewayKey(dir.path), dataDir: dir.path },
    );
    const tls = await ensureTlsMaterial(dir.path);
    const shared = {
      host: '127.0.0.1',
      port: 0,
      tls: { key: tls.key, cert: tls.cert },
      keyStore,
      adminToken: ADMIN_TOKEN,
      audiences: ['public'] as const,
      imapSettings: { host: '127.0.0.1', port: 1993, starttlsPort: 1143 },
      // Two requests at once per client, then one a minute: the third is 429.
      rateLimit: { perMinute: 1, burst: 2 },
      logger,
    };
    trustedServer = await startAdminServer({
      ...shared,
      proxyProtocol: { trusted: ['127.0.0.1', '::1'] },
    });
    otherServer = await startAdminServer({
      ...shared,
      proxyProtocol: { trusted: ['10.0.0.0/8'] },
    });
  });

  afterAll(async () => {
    await trustedServer?.close();
    await otherServer?.close();
    await keyStore?.close();
    dir.remove();
  });

  it('rate-limits each client the header names, not the balancer', async () => {
    const port = trustedServer.port;
    // Client A (v1): its burst of two, then 429.
    const a = proxyV1('203.0.113.20', 5000, '192.0.2.1', 443);
    expect([await getVia(port, a), await getVia(port, a), await getVia(port, a)]).toEqual([
      404, 404, 429,
    ]);
    // Client B (v2, IPv6) through the same balancer has its own bucket.
    const b = proxyV2('2001:db8::20', 5001, '2001:db8::1', 443);
    expect(await getVia(port, b)).toBe(404);
    // curl as the balancer names itself (127.0.0.1): a third bucket.
    const first = await curl(port, ['--haproxy-protocol']);
    const second = await curl(port, ['--haproxy-protocol']);
    const third = await curl(port, ['--haproxy-protocol']);
    expect([first.status, second.status, third.status]).toEqual(['404', '404', '429']);
    // And A is still limited.
    expect(await getVia(port, a)).toBe(429);
  });

  it('a trusted balancer without a header gets no handshake; the listener stays up', async () => {
    const before = logged('PROXY protocol: no valid header, connection refused').length;
    const plain = await curl(trustedServer.port, []);
    expect(plain.status).toBe('000');
    expect(plain.code).not.toBe(0);
    expect(logged('PROXY protocol: no valid header, connection refused').length).toBe(before + 1);
    expect(logged('PROXY protocol: no valid header, connection refused').at(-1)).toMatchObject({
      listener: 'public',
      reason: 'not a PROXY protocol header',
    });
    expect(await getVia(trustedServer.port, proxyV1('203.0.113.21', 1))).toBe(404);
  });

  it('a peer that is not a trusted balancer is refused, header or not, and logged', async () => {
    const before = logged(
      'PROXY protocol: peer is not a trusted balancer, connection refused',
    ).length;
    const withHeader = await curl(otherServer.port, ['--haproxy-protocol']);
    const without = await curl(otherServer.port, []);
    expect([withHeader.status, without.status]).toEqual(['000', '000']);
    const refusals = logged('PROXY protocol: peer is not a trusted balancer, connection refused');
    expect(refusals.length).toBe(before + 2);
    expect(refusals.at(-1)).toMatchObject({ ip: '127.0.0.1', listener: 'public' });
  });
});
