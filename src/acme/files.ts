/**
 * The ACME state in `<dataDir>/acme/`: the account key, and the certificate's key and chain
 * (docs/deployment.md "ACME"). Every file is 0600 and written atomically, so a crash
 * mid-renewal leaves the old pair readable; the key is written before the chain, and a
 * chain that does not match its key is treated as absent.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/atomic-file.js';

export interface AcmeFiles {
  dir: string;
  accountKey: string;
  key: string;
  cert: string;
}

export function acmeFiles(dataDir: string): AcmeFiles {
  const dir = join(dataDir, 'acme');
  return {
    dir,
    accountKey: join(dir, 'account.key'),
    key: join(dir, 'key.pem'),
    cert: join(dir, 'cert.pem'),
  };
}

export interface StoredCertificate {
  key: string;
  cert: string;
  notAfter: Date;
  /** DNS names in subjectAltName, lower case. */
  names: string[];
}

/** The stored certificate, or undefined when there is none (or it does not match its key). */
export function readStoredCertificate(files: AcmeFiles): StoredCertificate | undefined {
  let key: string;
  let cert: string;
  try {
    key = readFileSync(files.key, 'utf8');
    cert = readFileSync(files.cert, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const leaf = new X509Certificate(cert);
  if (!leaf.checkPrivateKey(createPrivateKey(key))) return undefined;
  return { key, cert, notAfter: new Date(leaf.validTo), names: dnsNames(leaf) };
}

function dnsNames(certificate: X509Certificate): string[] {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
}

export function writeCertificate(files: AcmeFiles, key: string, cert: string): void {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(files.key, key, 0o600);
  writeFileAtomic(files.cert, cert, 0o600);
}

export function readAccountKey(files: AcmeFiles): string | undefined {
  try {
    return readFileSync(files.accountKey, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function writeAccountKey(files: AcmeFiles, key: string): void {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(files.accountKey, key, 0o600);
}
