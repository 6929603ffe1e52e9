import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { profileRequestListener, type ProfileSource } from '../../src/profiles/index.js';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

export interface ProfileServer {
  /** https://127.0.0.1:<port> */
  origin: string;
  /** PEM file of the self-signed server certificate (curl --cacert, fetchProfile ca). */
  caFile: string;
  caPem: string;
  close(): Promise<void>;
}

/** A real node:https server on 127.0.0.1 serving the profile endpoints, with a certificate openssl made. */
export async function startProfileServer(source: ProfileSource): Promise<ProfileServer> {
  const openssl = requireBinary('openssl');
  const dir = tempDir('profiles-https-');
  const keyFile = join(dir.path, 'key.pem');
  const caFile = join(dir.path, 'cert.pem');
  await run(openssl, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    keyFile,
    '-out',
    caFile,
  ]);
  const caPem = readFileSync(caFile, 'utf8');
  const server: Server = createServer(
    { key: readFileSync(keyFile), cert: caPem },
    profileRequestListener(source),
  );
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    origin: `https://127.0.0.1:${port}`,
    caFile,
    caPem,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      dir.remove();
    },
  };
}
