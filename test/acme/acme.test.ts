/**
 * Certificates by ACME (docs/deployment.md "ACME") against a real ACME server, pebble: a
 * real `recrypt start` obtains its certificate with a real HTTP-01 and a real TLS-ALPN-01
 * validation (pebble connects back to the gateway's challenge listener), serves it on the
 * IMAPS and HTTPS listeners (checked with openssl s_client against pebble's root), and
 * renews and hot-reloads it without a restart.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli-run.js';
import { startRecrypt, waitFor, type Spawned } from '../helpers/gateway-process.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import {
  freeGatewayPorts,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-acme-');
let pebble: Pebble;
const gateways: Spawned[] = [];

/** The leaf certificate a TLS listener serves for `localhost`, and openssl's verdict on its chain. */
function served(port: number): { leaf: X509Certificate; verify: string } {
  const text = execFileSync(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-verify_hostname',
      'localhost',
      '-CAfile',
      pebble.rootFile,
      '-showcerts',
    ],
    { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  expect(pem).not.toBeNull();
  return {
    leaf: new X509Certificate(pem![0]),
    verify: /Verify return code: .*/.exec(text)?.[0] ?? '',
  };
}

async function startGateway(
  name: string,
  acme: string,
  waitReady = true,
): Promise<{ gateway: Spawned; ports: GatewayPorts; dir: string }> {
  const dir = join(tmp.path, name);
  execFileSync('mkdir', ['-p', dir]);
  const ports = await freeGatewayPorts();
  const configFile = writeGatewayConfig(dir, ports, [
    'logLevel: info',
    'hostname: localhost',
    `acme: { directoryUrl: "${pebble.directoryUrl}", email: postmaster@localhost, domains: [localhost], caFile: "${pebble.apiCaFile}", host: 127.0.0.1, ${acme} }`,
  ]);
  const gateway = startRecrypt(['--config', configFile], dir);
  gateways.push(gateway);
  if (!waitReady) return { gateway, ports, dir };
  await waitFor(
    `the ${name} gateway to serve HTTPS`,
    () => {
      if (gateway.child.exitCode !== null) throw new Error(`gateway exited: ${gateway.output()}`);
      try {
        execFileSync('curl', [
          '-sf',
          '--cacert',
          pebble.rootFile,
          '--resolve',
          `localhost:${ports.admin}:127.0.0.1`,
          `https://localhost:${ports.admin}/healthz`,
        ]);
        return true;
      } catch {
        return false;
      }
    },
    90_000,
  );
  return { gateway, ports, dir };
}

/** Waits for a log line: output reaches the pipe on its own schedule (pino writes async). */
async function logged(gateway: Spawned, pattern: RegExp): Promise<void> {
  await waitFor(`${pattern} in the gateway log`, () => pattern.test(gateway.output()), 10_000);
}

function expectIssuedByPebble(port: number): X509Certificate {
  const { leaf, verify } = served(port);
  const intermediate = new X509Certificate(pebble.intermediate);
  expect(leaf.issuer).toBe(intermediate.subject);
  expect(leaf.checkIssued(intermediate)).toBe(true);
  expect(leaf.subjectAltName).toContain('DNS:localhost');
  expect(verify).toBe('Verify return code: 0 (ok)');
  return leaf;
}

beforeAll(async () => {
  pebble = await startPebble(tmp.path);
}, 60_000);

afterAll(async () => {
  for (const gateway of gateways) await gateway.stop(5000);
  await pebble?.stop();
  tmp.remove();
});

describe('ACME certificates from pebble', () => {
  it('http-01: obtained by a real HTTP-01 validation, served on IMAPS and HTTPS, stored 0600', async () => {
    const { ports, dir, gateway } = await startGateway(
      'http01',
      `challenge: http-01, httpPort: ${pebble.httpPort}`,
    );
    const imaps = expectIssuedByPebble(ports.imap);
    const https = expectIssuedByPebble(ports.admin);
    expect(https.serialNumber).toBe(imaps.serialNumber);
    for (const file of ['account.key', 'key.pem', 'cert.pem'])
      expect(statSync(join(dir, 'data', 'acme', file)).mode & 0o777).toBe(0o600);
    await logged(gateway, /ACME: certificate installed/);
    // Pebble fetched the key authorization from the challenge listener.
    await logged(gateway, /ACME: answered an http-01 validation/);
    // The operator's commands still reach the operator listener (its own certificate), and
    // owners are told to verify the CA-issued one by name, without --ca.
    const added = await runCli(['user', 'add', 'olga@example.org', '--config', 'recrypt.yaml'], {
      cwd: dir,
    });
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toContain(`--gateway https://localhost:${ports.admin}`);
    expect(added.stdout).not.toContain('--ca');
  }, 120_000);

  it("a failed validation stops the start with the CA's reason, and writes no certificate", async () => {
    // The challenge listener is not where pebble connects: pebble's HTTP-01 fetch fails.
    const elsewhere = await freePort();
    const { gateway, dir } = await startGateway(
      'refused',
      `challenge: http-01, httpPort: ${elsewhere}`,
      false,
    );
    const code = await gateway.exited;
    expect(code).not.toBe(0);
    // 'exit' can come before the last of stderr has been read.
    await waitFor(
      'the reason on stderr',
      () =>
        /acme: no certificate for localhost from https:\/\/127\.0\.0\.1:\d+\/dir: .*connect/i.test(
          gateway.stderr(),
        ),
      10_000,
    );
    expect(existsSync(join(dir, 'data', 'acme', 'cert.pem'))).toBe(false);
  }, 120_000);

  // One gateway for TLS-ALPN-01 and for renewals (a start and an issuance fewer): Pebble's
  // certificates last years, so a renewBefore longer than that makes every check a renewal,
  // and a short checkInterval brings the next check within the test. Every certificate it
  // serves comes from pebble by TLS-ALPN-01, the first as much as the renewed ones.
  let renewing: Promise<{ gateway: Spawned; ports: GatewayPorts; pid: number }> | undefined;
  const renewingGateway = () =>
    (renewing ??= startGateway(
      'tlsalpn01',
      `challenge: tls-alpn-01, tlsAlpnPort: ${pebble.tlsPort}, renewBefore: 100000d, checkInterval: 2s`,
    ).then(({ gateway, ports }) => ({ gateway, ports, pid: gateway.child.pid! })));

  it('tls-alpn-01: obtained by a real TLS-ALPN-01 validation on the challenge listener', async () => {
    const { ports, gateway } = await renewingGateway();
    expectIssuedByPebble(ports.imap);
    expectIssuedByPebble(ports.admin);
    // Pebble completed an acme-tls/1 handshake with the challenge listener.
    await logged(gateway, /"alpn":"acme-tls\/1".*ACME: answered a tls-alpn-01 validation/);
    expect(gateway.output()).not.toContain('answered an http-01 validation');
  }, 120_000);

  it('renews a certificate within renewBefore and hot-reloads it without a restart', async () => {
    const { ports, gateway, pid } = await renewingGateway();
    const first = expectIssuedByPebble(ports.imap).serialNumber;
    await waitFor(
      'a renewed certificate on IMAPS and HTTPS',
      () =>
        served(ports.imap).leaf.serialNumber !== first &&
        served(ports.admin).leaf.serialNumber !== first,
      60_000,
    );
    expectIssuedByPebble(ports.imap);
    expect(gateway.child.exitCode).toBeNull();
    expect(gateway.child.pid).toBe(pid);
    await logged(gateway, /TLS certificate reloaded/);
  }, 120_000);
});
