/**
 * A real ACME server for tests: Let's Encrypt's pebble (Debian's package), on free loopback
 * ports, with an API certificate made by openssl here. It validates HTTP-01 on `httpPort`
 * and TLS-ALPN-01 on `tlsPort` of the name being validated (names from /etc/hosts, so
 * `localhost` is 127.0.0.1).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireBinary } from './binaries.js';
import { cleanEnv, spawnGroup, waitFor, type Spawned } from './gateway-process.js';
import { freePort } from './ports.js';

export interface Pebble {
  directoryUrl: string;
  /** Trust for pebble's API certificate (acme.caFile). */
  apiCaFile: string;
  httpPort: number;
  tlsPort: number;
  /** Pebble's issuing root and intermediate, PEM, as its management API serves them. */
  rootFile: string;
  intermediate: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startPebble(dir: string): Promise<Pebble> {
  requireBinary('pebble');
  requireBinary('openssl');
  requireBinary('curl');
  const apiKey = join(dir, 'pebble-api.key');
  const apiCert = join(dir, 'pebble-api.pem');
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
      '-keyout',
      apiKey,
      '-out',
      apiCert,
      '-days',
      '2',
      '-subj',
      '/CN=pebble test API',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const [api, management, httpPort, tlsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const configFile = join(dir, 'pebble.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${api}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: apiCert,
        privateKey: apiKey,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const process: Spawned = spawnGroup('pebble', ['-config', configFile], {
    cwd: dir,
    // No random 0-15 s wait before each validation, and no deliberately rejected nonces:
    // the test is about our side of the protocol, not pebble's chaos settings.
    env: cleanEnv({ PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' }),
  });
  const managementGet = (path: string): string =>
    execFileSync('curl', ['-sf', '--cacert', apiCert, `https://127.0.0.1:${management}${path}`], {
      encoding: 'utf8',
    });
  await waitFor('pebble to listen', () => {
    if (process.child.exitCode !== null) throw new Error(`pebble exited: ${process.output()}`);
    try {
      managementGet('/roots/0');
      return true;
    } catch {
      return false;
    }
  });
  const rootFile = join(dir, 'pebble-root.pem');
  writeFileSync(rootFile, managementGet('/roots/0'));
  return {
    directoryUrl: `https://127.0.0.1:${api}/dir`,
    apiCaFile: apiCert,
    httpPort,
    tlsPort,
    rootFile,
    intermediate: managementGet('/intermediates/0'),
    output: () => process.output(),
    stop: () => process.stop(5000),
  };
}
