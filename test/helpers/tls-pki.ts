/**
 * A test CA and server certificates made with openssl, for TLS names that must verify:
 * MTA-STS policy hosts and MX hosts (test/outbound/mta-sts.test.ts, dane.test.ts).
 * `selfSigned` makes a certificate for the same names that no CA vouches for.
 */
import { execFileSync as run } from 'node:child_process';

const execFileSync = (file: string, args: string[]) =>
  run(file, args, { stdio: ['ignore', 'pipe', 'ignore'] });
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireBinary } from './binaries.js';

export interface TestCertificate {
  key: string;
  cert: string;
  certPath: string;
  /** DER of the certificate. */
  der: Buffer;
}

export interface TestCa extends TestCertificate {
  dir: string;
  issue(name: string, dnsNames: string[]): TestCertificate;
  selfSigned(name: string, dnsNames: string[]): TestCertificate;
}

function read(dir: string, name: string): TestCertificate {
  const certPath = join(dir, `${name}.crt`);
  const cert = readFileSync(certPath, 'utf8');
  return {
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
    cert,
    certPath,
    der: execFileSync('openssl', ['x509', '-in', certPath, '-outform', 'DER']),
  };
}

function ecKey(dir: string, name: string): string {
  const path = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    path,
  ]);
  return path;
}

export function makeTestCa(dir: string): TestCa {
  requireBinary('openssl');
  const caKey = ecKey(dir, 'ca');
  const caCert = join(dir, 'ca.crt');
  execFileSync('openssl', [
    'req',
    '-new',
    '-x509',
    '-key',
    caKey,
    '-out',
    caCert,
    '-days',
    '30',
    '-subj',
    '/CN=recrypt test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const extensions = (names: string[]) => {
    const file = join(dir, `ext-${names[0]}.cnf`);
    writeFileSync(
      file,
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`,
    );
    return file;
  };
  return {
    ...read(dir, 'ca'),
    dir,
    issue(name, dnsNames) {
      const key = ecKey(dir, name);
      const csr = join(dir, `${name}.csr`);
      execFileSync('openssl', [
        'req',
        '-new',
        '-key',
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${dnsNames[0]}`,
      ]);
      execFileSync('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-out',
        join(dir, `${name}.crt`),
        '-days',
        '30',
        '-extfile',
        extensions(dnsNames),
      ]);
      return read(dir, name);
    },
    selfSigned(name, dnsNames) {
      const key = ecKey(dir, name);
      execFileSync('openssl', [
        'req',
        '-new',
        '-x509',
        '-key',
        key,
        '-out',
        join(dir, `${name}.crt`),
        '-days',
        '30',
        '-subj',
        `/CN=${dnsNames[0]}`,
        '-addext',
        `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}`,
      ]);
      return read(dir, name);
    },
  };
}
