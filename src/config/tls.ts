/**
 * TLS material for the gateway's listeners: the configured files, or on first start a
 * self-signed certificate generated into `<dataDir>/tls/` so that the embedded default
 * speaks TLS with nothing installed. Operators replace it with a real certificate by
 * setting `tls.key` and `tls.cert`.
 */
import { webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic } from './atomic-file.js';
import { ConfigError } from './load.js';

export interface TlsMaterial {
  key: string;
  cert: string;
  /** Where they were read from, for reload on SIGHUP and for messages. */
  keyFile: string;
  certFile: string;
  generated: boolean;
}

export async function ensureTlsMaterial(
  dataDir: string,
  configured?: { key: string; cert: string },
  now: Date = new Date(),
  /** The name the self-signed certificate is made for (config `hostname`), beside localhost. */
  name: string = hostname(),
): Promise<TlsMaterial> {
  if (configured !== undefined) {
    // Named by option, so a wrong path reads as a config problem, not a crash.
    for (const [option, file] of [
      ['tls.key', configured.key],
      ['tls.cert', configured.cert],
    ] as const) {
      try {
        readFileSync(file);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        throw new ConfigError([`${option}: ${code}: cannot read ${file}`]);
      }
    }
    return { ...readTls(configured.key, configured.cert), generated: false };
  }
  const dir = join(dataDir, 'tls');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  try {
    return { ...readTls(keyFile, certFile), generated: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { key, cert } = await selfSignedCertificate(now, name);
  writeFileAtomic(keyFile, key, 0o600);
  writeFileAtomic(certFile, cert, 0o600);
  return { key, cert, keyFile, certFile, generated: true };
}

function readTls(keyFile: string, certFile: string): Omit<TlsMaterial, 'generated'> {
  return {
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    keyFile,
    certFile,
  };
}

// @peculiar/x509 types its parameters with the DOM's WebCrypto types, which this
// Node-only project does not load; node:crypto's webcrypto is the same API.
type CryptoForX509 = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1];
type CryptoKeyPairForX509 = Parameters<
  typeof x509.X509CertificateGenerator.createSelfSigned
>[0]['keys'];

async function selfSignedCertificate(
  now: Date,
  host: string,
): Promise<{ key: string; cert: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const notAfter = new Date(now.getTime() + 825 * 24 * 3600 * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
        .toString('hex')
        .replace(/^./, '1'),
      name: `CN=${host}`,
      notBefore: now,
      notAfter,
      keys: keys as unknown as CryptoKeyPairForX509,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: host },
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
          { type: 'ip', value: '::1' },
        ]),
      ],
    },
    webcrypto as unknown as CryptoForX509,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  return { key, cert: certificate.toString('pem') };
}
