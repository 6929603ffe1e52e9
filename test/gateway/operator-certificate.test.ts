/**
 * With a CA-issued certificate for the public name (`tls` files here; `acme` is the same
 * case), the operator's commands still work on the gateway machine: the operator listener
 * serves the gateway's own self-signed certificate from <dataDir>/tls, which they trust by
 * its key, while the public listeners serve the configured one. `user add` then prints
 * the public URL and no `--ca`: owners verify a CA-issued certificate by its host name.
 * Real `recrypt init` / `recrypt start` / `recrypt user add`, certificates made by openssl.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { runCli } from '../helpers/cli-run.js';
import { waitFor, type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'mx.operator-cert.example';
const tmp = tempDir('recrypt-operator-cert-');
const file = (name: string) => join(tmp.path, name);
let openssl: string;
let ports: GatewayPorts;
let configFile: string;
let gateway: Spawned | undefined;

/** A CA and a server certificate it issued for NAME only (no 127.0.0.1, no localhost). */
function makeCaIssued(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const run = (args: string[]) => execFileSync(openssl, args, { stdio: 'ignore' });
  run(
    ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem')].concat([
      '-subj',
      '/CN=Operator Test CA',
      '-days',
      '2',
    ]),
  );
  run(
    ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr')].concat([
      '-subj',
      `/CN=${NAME}`,
    ]),
  );
  writeFileSync(file('server.ext'), `subjectAltName=DNS:${NAME}\n`);
  run(
    [
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
    ].concat([
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      file('server.ext'),
      '-out',
      file('server.pem'),
    ]),
  );
}

/** SHA-256 fingerprint of the certificate a TLS port serves, and openssl's verdict for NAME. */
function served(port: number, caFile: string): { fingerprint: string; verify: string } {
  const text = execFileSync(
    openssl,
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', NAME].concat([
      '-verify_hostname',
      NAME,
      '-CAfile',
      caFile,
    ]),
    { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  const fingerprint = execFileSync(openssl, ['x509', '-noout', '-fingerprint', '-sha256'], {
    input: pem ?? '',
    encoding: 'utf8',
  }).trim();
  return { fingerprint, verify: /Verify return code: .*/.exec(text)?.[0] ?? '' };
}

function fingerprintOf(certFile: string): string {
  return execFileSync(openssl, ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'], {
    encoding: 'utf8',
  }).trim();
}

beforeAll(async () => {
  openssl = requireBinary('openssl');
  requireBinary('curl');
  makeCaIssued();
  ports = await freeGatewayPorts();
  configFile = writeGatewayConfig(tmp.path, ports, [
    'logLevel: info',
    `hostname: ${NAME}`,
    `tls: { key: ${file('server.key')}, cert: ${file('server.pem')} }`,
  ]);
  const init = await runCli(['init', '--config', configFile], { cwd: tmp.path });
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  expect(init.stdout).toMatch(
    /tls\/cert\.pem \(TLS certificate, self-signed, the operator listener\)/,
  );
  gateway = await startGatewayProcess(configFile, ports);
}, 120_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('a CA-issued certificate on the public listeners', () => {
  it('is what the public listeners serve; the operator listener serves the gateway its own', () => {
    const own = join(tmp.path, 'data', 'tls', 'cert.pem');
    expect(existsSync(own)).toBe(true);
    for (const port of [ports.admin, ports.imap]) {
      const { fingerprint, verify } = served(port, file('ca.pem'));
      expect(fingerprint).toBe(fingerprintOf(file('server.pem')));
      expect(verify).toBe('Verify return code: 0 (ok)');
    }
    expect(served(ports.operator, own).fingerprint).toBe(fingerprintOf(own));
    // What a health check on the gateway machine runs.
    const ready = execFileSync(
      'curl',
      ['-sf', '--cacert', own, `https://127.0.0.1:${ports.operator}/readyz`],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(ready)).toMatchObject({ status: 'ready' });
  });

  it('leaves the operator commands working; user add prints the public URL without --ca', async () => {
    const added = await runCli(['user', 'add', 'carol@example.org', '--config', configFile], {
      cwd: tmp.path,
    });
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toContain(`--gateway https://${NAME}:${ports.admin}`);
    expect(added.stdout).not.toContain('--ca');
    expect(added.stdout).not.toContain('gateway-cert.pem');
    const listed = await runCli(['user', 'list', '--config', configFile], { cwd: tmp.path });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^carol@example\.org\tpending\t/m);
  });

  it('after SIGHUP, the operator listener still serves its own certificate', async () => {
    const own = join(tmp.path, 'data', 'tls', 'cert.pem');
    gateway!.child.kill('SIGHUP');
    await waitFor(
      'the reload in the gateway log',
      () => gateway!.output().includes('TLS certificate reloaded'),
      20_000,
    );
    expect(served(ports.operator, own).fingerprint).toBe(fingerprintOf(own));
    const removed = await runCli(['user', 'remove', 'carol@example.org', '--config', configFile], {
      cwd: tmp.path,
    });
    expect(removed.stderr).toBe('');
    expect(removed.code).toBe(0);
  });
});
