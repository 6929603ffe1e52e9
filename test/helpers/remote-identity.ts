/**
 * A remote list member's own S/MIME identity, made by the real `openssl` the way a person
 * without any CA would: `openssl req -x509 -newkey ec …` (self-signed), and on request a
 * .p12 by `openssl pkcs12 -export` with OpenSSL 3's defaults (PBES2, AES-256-CBC).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOpenssl } from './openssl.js';

export interface RemoteIdentityOptions {
  dir: string;
  /** A file-name stem inside `dir`. */
  name: string;
  /** Put in subjectAltName as rfc822Name (unless `subjectEmailOnly`). */
  address: string;
  curve?: 'P-256' | 'P-384';
  days?: number;
  /** The keyUsage extension's value; absent: no keyUsage extension. */
  keyUsage?: string;
  /** Name the address only in the subject's emailAddress attribute. */
  subjectEmailOnly?: boolean;
  /** Also export a .p12 with this password. */
  p12Password?: string;
}

export interface RemoteIdentity {
  keyFile: string;
  certFile: string;
  p12File?: string;
  der: Uint8Array;
  key: KeyObject;
}

export async function makeRemoteIdentity(options: RemoteIdentityOptions): Promise<RemoteIdentity> {
  const keyFile = join(options.dir, `${options.name}.key.pem`);
  const certFile = join(options.dir, `${options.name}.cert.pem`);
  const subject = options.subjectEmailOnly
    ? `/CN=${options.name}/emailAddress=${options.address}`
    : `/CN=${options.name}`;
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    `ec_paramgen_curve:${options.curve ?? 'P-256'}`,
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    String(options.days ?? 30),
    '-subj',
    subject,
  ];
  if (options.subjectEmailOnly !== true)
    args.push('-addext', `subjectAltName=email:${options.address}`);
  if (options.keyUsage !== undefined) args.push('-addext', `keyUsage=${options.keyUsage}`);
  await runOpenssl(args, new Uint8Array());
  const identity: RemoteIdentity = {
    keyFile,
    certFile,
    der: new Uint8Array(new X509Certificate(readFileSync(certFile)).raw),
    key: createPrivateKey(readFileSync(keyFile)),
  };
  if (options.p12Password !== undefined) {
    const passFile = join(options.dir, `${options.name}.p12pass`);
    writeFileSync(passFile, `${options.p12Password}\n`, { mode: 0o600 });
    identity.p12File = join(options.dir, `${options.name}.p12`);
    await runOpenssl(
      [
        'pkcs12',
        '-export',
        '-inkey',
        keyFile,
        '-in',
        certFile,
        '-out',
        identity.p12File,
        '-passout',
        `file:${passFile}`,
      ],
      new Uint8Array(),
    );
  }
  return identity;
}
