/**
 * TLS material for the gateway's listeners: the configured files, or on first start a
 * self-signed certificate generated into `<dataDir>/tls/` so that the embedded default
 * speaks TLS with nothing installed. Operators replace it with a real certificate by
 * setting `tls.key` and `tls.cert`.
 */
import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
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
  /** The generated certificate was re-issued for its own key (near its expiry). */
  renewed?: boolean;
}

/**
 * A certificate in <dataDir>/tls this close to its expiry is re-issued (for its key) at
 * start, on SIGHUP and at the gateway's daily check; the generated one lasts 825 days.
 */
export const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

/**
 * A new certificate for the same key when the generated one expires within RENEW_BEFORE_MS;
 * undefined when it does not, or when the key is not one this module can sign with (a
 * P-256 key an operator put there keeps its certificate). Owners trust the gateway by
 * this key (src/owner/gateway-trust.ts), so they keep working across the renewal.
 */
async function renewedIfExpiring(
  existing: { key: string; cert: string },
  now: Date,
  name: string,
): Promise<string | undefined> {
  let notAfter: number;
  try {
    notAfter = Date.parse(new X509Certificate(existing.cert).validTo);
  } catch {
    return undefined;
  }
  if (notAfter - now.getTime() > RENEW_BEFORE_MS) return undefined;
  try {
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
    const privateKey = await webcrypto.subtle.importKey(
      'pkcs8',
      createPrivateKey(existing.key).export({ type: 'pkcs8', format: 'der' }),
      algorithm,
      true,
      ['sign'],
    );
    const publicKey = await webcrypto.subtle.importKey(
      'spki',
      createPublicKey(existing.key).export({ type: 'spki', format: 'der' }),
      algorithm,
      true,
      ['verify'],
    );
    return (await selfSignedCertificate(now, name, { privateKey, publicKey })).cert;
  } catch {
    return undefined;
  }
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
  let existing: Omit<TlsMaterial, 'generated'> | undefined;
  try {
    existing = readTls(keyFile, certFile);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (existing !== undefined) {
    const cert = await renewedIfExpiring(existing, now, name);
    if (cert === undefined) return { ...existing, generated: false };
    writeFileAtomic(certFile, cert, 0o600);
    return { ...existing, cert, generated: false, renewed: true };
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
  /** The key pair to certify; a new one when absent. */
  existing?: webcrypto.CryptoKeyPair,
): Promise<{ key: string; cert: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys =
    existing ??
    ((await webcrypto.subtle.generateKey(algorithm, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair);
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
