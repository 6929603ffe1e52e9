/**
 * The challenge listeners on their own, with real clients (curl, openssl s_client): they
 * answer the pending challenge and nothing else, and bad requests get the protocol's
 * error, never a crash (docs/deployment.md "ACME").
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import acme from 'acme-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttp01Responder, startTlsAlpn01Responder } from '../../src/acme/responders.js';
import type { ChallengeResponder } from '../../src/acme/responders.js';
import { requireBinary } from '../helpers/binaries.js';

const logger = pino({ level: 'silent' });
let http: ChallengeResponder;
let alpn: ChallengeResponder;

// The listeners run in this process: clients must run asynchronously, or they wait on us.
const run = promisify(execFile);

/** Runs a client to its end, whatever its exit status, with stdin closed. */
async function client(
  command: string,
  args: string[],
): Promise<{ stdout: string; stderr: string }> {
  const child = run(command, args, { encoding: 'utf8', timeout: 20_000 });
  child.child.stdin?.end();
  try {
    return await child;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function curl(args: string[]): Promise<{ status: string; body: string }> {
  const out = (await client('curl', ['-s', '-w', '\n%{http_code}', ...args])).stdout;
  const cut = out.lastIndexOf('\n');
  return { body: out.slice(0, cut), status: out.slice(cut + 1) };
}

beforeAll(async () => {
  requireBinary('curl');
  requireBinary('openssl');
  http = await startHttp01Responder('127.0.0.1', 0, logger);
  alpn = await startTlsAlpn01Responder('127.0.0.1', 0, logger);
});

afterAll(async () => {
  await http?.close();
  await alpn?.close();
});

describe('the HTTP-01 listener', () => {
  it('answers the pending token with its key authorization, and 404 once removed', async () => {
    http.add({ token: 'tok_en-1', name: 'mx.example.org', keyAuthorization: 'tok_en-1.thumb' });
    const url = `http://127.0.0.1:${http.port}/.well-known/acme-challenge/tok_en-1`;
    expect(await curl([url])).toEqual({ status: '200', body: 'tok_en-1.thumb' });
    http.remove({ token: 'tok_en-1', name: 'mx.example.org' });
    expect((await curl([url])).status).toBe('404');
  });

  it('serves nothing else: other paths, traversal, other methods, no Host', async () => {
    http.add({ token: 'tok2', name: 'mx.example.org', keyAuthorization: 'tok2.thumb' });
    const base = `http://127.0.0.1:${http.port}`;
    expect((await curl([`${base}/`])).status).toBe('404');
    expect((await curl([`${base}/.well-known/acme-challenge/other`])).status).toBe('404');
    const traversal = `${base}/.well-known/acme-challenge/../acme-challenge/tok2`;
    expect((await curl(['--path-as-is', traversal])).status).toBe('404');
    expect((await curl(['-X', 'POST', `${base}/.well-known/acme-challenge/tok2`])).status).toBe(
      '405',
    );
    const raw = await client('curl', ['-s', '-w', '%{http_code}', '-H', 'Host:', `${base}/`]);
    // HTTP/1.1 without Host is a bad request (RFC 9112 §3.2).
    expect(raw.stdout).toBe('400');
    expect((await curl([`${base}/.well-known/acme-challenge/tok2`])).status).toBe('200');
  });
});

describe('the TLS-ALPN-01 listener', () => {
  const handshake = (name: string, alpnProtocol: string) =>
    client('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${alpn.port}`,
      '-servername',
      name,
      '-alpn',
      alpnProtocol,
    ]);

  it('presents the challenge certificate for the pending name over acme-tls/1', async () => {
    const authz = { identifier: { type: 'dns', value: 'mx.example.org' } };
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, cert] = await acme.crypto.createAlpnCertificate(
      authz as Parameters<typeof acme.crypto.createAlpnCertificate>[0],
      'token.thumb',
      key,
    );
    alpn.add({
      token: 't',
      name: 'mx.example.org',
      keyAuthorization: 'token.thumb',
      key: key.toString(),
      cert: cert.toString(),
    });
    const done = await handshake('mx.example.org', 'acme-tls/1');
    expect(done.stdout).toContain('ALPN protocol: acme-tls/1');
    expect(done.stdout).toMatch(/subject=CN ?= ?mx\.example\.org/);
    alpn.remove({ token: 't', name: 'mx.example.org' });
    const after = await handshake('mx.example.org', 'acme-tls/1');
    expect(after.stdout).not.toContain('ALPN protocol: acme-tls/1');
    expect(after.stdout + after.stderr).toMatch(/alert|error/i);
  });

  it('refuses a name with no pending challenge', async () => {
    const done = await handshake('other.example.org', 'acme-tls/1');
    expect(done.stdout).not.toContain('BEGIN CERTIFICATE');
    expect(done.stdout + done.stderr).toMatch(/alert|error/i);
  });
});
