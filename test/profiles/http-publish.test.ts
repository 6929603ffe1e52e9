/**
 * The profile endpoints on a real node:https server, with curl as the client (and
 * openssl reading what curl downloaded), then fetchProfile against the same server.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ProfileError,
  ProfileFetchError,
  createProfileHandler,
  fetchProfile,
  profilePath,
  profileUrl,
  type ProfileSource,
} from '../../src/profiles/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { MapProfileSource } from '../helpers/profiles-source.js';
import { startProfileServer, type ProfileServer } from '../helpers/profiles-server.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';
import {
  vectorBytes,
  vectorJson,
  vectorText,
  type ValidVector,
} from '../helpers/profiles-vectors.js';

const run = promisify(execFile);
const curlBin = requireBinary('curl');
const openssl = requireBinary('openssl');
const valid = vectorJson<ValidVector>('valid.json');
const jws = vectorText('profile.jws');
const group = vectorBytes('group.cer');
const now = new Date(valid.now);

const source = new MapProfileSource();
source.profiles.set('alice@example.org', jws);
source.certificates.set('alice@example.org', group);
// A server that answers bob's address with alice's profile: the client must notice.
source.profiles.set('bob@example.org', jws);
// A profile whose payload was altered in transit.
const [h, p, s] = jws.split('.') as [string, string, string];
const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as {
  ProfileMailPublic: { name: string };
};
payload.ProfileMailPublic.name = 'Mallory';
source.profiles.set(
  'carol@example.org',
  `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`,
);
source.profiles.set('big@example.org', 'x'.repeat(100_000));

let server: ProfileServer;
const downloads = tempDir('profiles-curl-');

beforeAll(async () => {
  server = await startProfileServer(source);
});
afterAll(async () => {
  await server?.close();
  downloads.remove();
});

interface CurlResult {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

async function curl(path: string, ...args: string[]): Promise<CurlResult> {
  const headerFile = join(downloads.path, `h-${Math.random().toString(36).slice(2)}`);
  const bodyFile = `${headerFile}.body`;
  const { stdout } = await run(curlBin, [
    '--silent',
    '--show-error',
    '--cacert',
    server.caFile,
    '--dump-header',
    headerFile,
    '--output',
    bodyFile,
    '--write-out',
    '%{http_code}',
    '--max-time',
    '20',
    '--path-as-is',
    ...args,
    `${server.origin}${path}`,
  ]);
  const headers = new Map<string, string>();
  for (const line of readFileSync(headerFile, 'utf8').split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = Buffer.alloc(0);
  try {
    body = readFileSync(bodyFile);
  } catch {
    // curl writes no file for an empty body.
  }
  return { status: Number(stdout), headers, body };
}

describe('curl against the profile endpoints', () => {
  it('GET the profile: the JWS, as application/jose, with ETag and Cache-Control', async () => {
    const r = await curl(profilePath('alice@example.org'));
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(jws);
    expect(r.headers.get('content-type')).toBe('application/jose');
    expect(r.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(r.headers.get('cache-control')).toBe('public, max-age=300');
    expect(r.headers.get('content-length')).toBe(String(jws.length));
  });

  it('the address may be given with a literal @ and in any case', async () => {
    const r = await curl('/.well-known/mail-profile/Alice@Example.org');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(jws);
  });

  it('GET group.cer: the DER certificate, which openssl reads', async () => {
    const r = await curl(`${profilePath('alice@example.org')}/group.cer`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/pkix-cert');
    expect(Buffer.compare(r.body, Buffer.from(group))).toBe(0);
    const file = join(downloads.path, 'group.cer');
    await run(curlBin, [
      '--silent',
      '--cacert',
      server.caFile,
      '--output',
      file,
      `${server.origin}${profilePath('alice@example.org')}/group.cer`,
    ]);
    const { stdout } = await run(openssl, [
      'x509',
      '-inform',
      'DER',
      '-in',
      file,
      '-noout',
      '-issuer',
    ]);
    expect(stdout.trim()).toBe(`issuer=CN = ${valid.udf}`);
  });

  it('HEAD: the same headers and no body', async () => {
    const get = await curl(profilePath('alice@example.org'));
    const head = await curl(profilePath('alice@example.org'), '--head');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'));
    expect(head.headers.get('etag')).toBe(get.headers.get('etag'));
    // With --head curl writes the header block to --output; nothing may follow it.
    expect(head.body.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/);
    expect(head.body.toString()).not.toContain(jws.slice(0, 20));
  });

  it('If-None-Match with the ETag: 304 without a body', async () => {
    const get = await curl(profilePath('alice@example.org'));
    const again = await curl(
      profilePath('alice@example.org'),
      '--header',
      `If-None-Match: ${get.headers.get('etag')}`,
    );
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const other = await curl(
      profilePath('alice@example.org'),
      '--header',
      'If-None-Match: "something-else"',
    );
    expect(other.status).toBe(200);
  });

  it('unknown addresses: 404, byte-identical whichever address or resource', async () => {
    const a = await curl(profilePath('nobody@example.org'));
    const b = await curl(`${profilePath('someone-else@example.net')}/group.cer`);
    const c = await curl(`${profilePath('bob@example.org')}/group.cer`);
    for (const r of [a, b, c]) {
      expect(r.status).toBe(404);
      expect(r.body.toString()).toBe(a.body.toString());
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
  });

  it.each([
    '/.well-known/mail-profile/not-an-address',
    '/.well-known/mail-profile/alice%40',
    '/.well-known/mail-profile/alice%0d%0a%40example.org',
    '/.well-known/mail-profile/%E0%A4%A',
    '/.well-known/mail-profile/alice%40example.org/other.cer',
    '/.well-known/mail-profile/alice%40example.org/group.cer/x',
    '/.well-known/mail-profile/',
  ])('malformed %s: 400', async (path) => {
    const r = await curl(path);
    expect(r.status).toBe(400);
    expect(r.body.toString()).toBe('malformed address\n');
  });

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS'])('%s: 405 with Allow', async (method) => {
    const r = await curl(profilePath('alice@example.org'), '--request', method, '--data', 'x');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });

  it('paths outside the prefix are not the handler’s (the listener answers 404)', async () => {
    const r = await curl('/.well-known/mail-profilex/alice%40example.org');
    expect(r.status).toBe(404);
  });

  it('a failing source: 503, and nothing about why', async () => {
    source.failing = true;
    try {
      const r = await curl(profilePath('alice@example.org'));
      expect(r.status).toBe(503);
      expect(r.body.toString()).toBe('temporarily unavailable\n');
    } finally {
      source.failing = false;
    }
  });

  it('the source is asked with the canonical address', async () => {
    source.lookups.length = 0;
    await curl('/.well-known/mail-profile/ALICE%40EXAMPLE.ORG');
    expect(source.lookups).toEqual(['alice@example.org']);
  });
});

describe('fetchProfile against the same server', () => {
  const options = (): { baseUrl: string; ca: string; now: Date } => ({
    baseUrl: server.origin,
    ca: server.caPem,
    now,
  });

  async function failure(address: string, extra: object = {}): Promise<unknown> {
    return fetchProfile(address, { ...options(), ...extra }).then(
      () => 'no error',
      (error: unknown) => error,
    );
  }

  it('fetches and verifies alice’s profile', async () => {
    const fetched = await fetchProfile('alice@example.org', {
      ...options(),
      expectedUdf: valid.udf,
    });
    expect(fetched.profile.address).toBe('alice@example.org');
    expect(fetched.profile.udf).toBe(valid.udf);
    expect(fetched.jws).toBe(jws);
    expect(Buffer.compare(Buffer.from(fetched.groupCertificate), Buffer.from(group))).toBe(0);
    expect(fetched.url).toBe(`${server.origin}/.well-known/mail-profile/alice%40example.org`);
  });

  it.each([
    ['bob@example.org', {}, ProfileError, 'address-mismatch'],
    ['carol@example.org', {}, ProfileError, 'bad-signature'],
    ['nobody@example.org', {}, ProfileFetchError, 'not-found'],
    ['big@example.org', {}, ProfileFetchError, 'too-large'],
    [
      'alice@example.org',
      { expectedUdf: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' },
      ProfileError,
      'udf-mismatch',
    ],
    ['alice@example.org', { now: new Date(valid.expiredAt) }, ProfileError, 'expired'],
  ])('%s %j fails with %o %s', async (address, extra, type, code) => {
    const error = await failure(address, extra);
    expect(error).toBeInstanceOf(type);
    expect((error as { code: string }).code).toBe(code);
  });

  it('reports a failing server as http-status with its status', async () => {
    source.failing = true;
    try {
      const error = await failure('alice@example.org');
      expect(error).toBeInstanceOf(ProfileFetchError);
      expect((error as ProfileFetchError).code).toBe('http-status');
      expect((error as ProfileFetchError).status).toBe(503);
    } finally {
      source.failing = false;
    }
  });

  it('refuses a server its trust anchors do not cover', async () => {
    const otherCa = new X509Certificate(Buffer.from(vectorBytes('owner-ca.cer'))).toString();
    const error = await failure('alice@example.org', { ca: otherCa });
    expect((error as ProfileFetchError).code).toBe('network');
    const withoutCa = await fetchProfile('alice@example.org', { baseUrl: server.origin, now }).then(
      () => 'no error',
      (e: unknown) => e,
    );
    expect((withoutCa as ProfileFetchError).code).toBe('network');
  });

  it('derives https://<domain>/.well-known/mail-profile/<address> by default and refuses http', () => {
    expect(profileUrl('Alice@Example.org')).toBe(
      'https://example.org/.well-known/mail-profile/alice%40example.org',
    );
    expect(() => profileUrl('alice@example.org', 'http://127.0.0.1:1')).toThrow(ProfileFetchError);
  });
});

describe('mounted in another server', () => {
  let admin: HttpServer;
  let silent: TcpServer;
  const sockets: Socket[] = [];
  let adminPort = 0;
  let silentPort = 0;

  beforeAll(async () => {
    const profiles = createProfileHandler(source);
    // How the admin server mounts it: profile paths first, everything else its own.
    admin = createHttpServer((req, res) => {
      void profiles(req, res).then((handled) => {
        if (!handled) res.writeHead(418).end('admin\n');
      });
    });
    silent = createTcpServer((socket) => sockets.push(socket));
    adminPort = await freePort();
    silentPort = await freePort();
    await new Promise<void>((resolve) => admin.listen(adminPort, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    admin?.closeAllConnections();
    await Promise.all([
      new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve())),
      new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve())),
    ]);
  });

  it('answers profile paths and leaves the rest to its host', async () => {
    const base = `http://127.0.0.1:${adminPort}`;
    const { stdout: a } = await run(curlBin, [
      '--silent',
      '--write-out',
      ' %{http_code}',
      `${base}${profilePath('alice@example.org')}`,
    ]);
    expect(a).toBe(`${jws} 200`);
    const { stdout: b } = await run(curlBin, [
      '--silent',
      '--write-out',
      ' %{http_code}',
      `${base}/v1/devices`,
    ]);
    expect(b).toBe('admin\n 418');
  });

  it('fetchProfile gives up on a server that never answers', async () => {
    const error = await fetchProfile('alice@example.org', {
      baseUrl: `https://127.0.0.1:${silentPort}`,
      timeoutMs: 500,
    }).then(
      () => 'no error',
      (e: unknown) => e,
    );
    expect((error as ProfileFetchError).code).toBe('timeout');
  });
});

// Keeps the ProfileSource contract honest at compile time.
const contract: ProfileSource = source;
void contract;
