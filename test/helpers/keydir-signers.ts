/**
 * S/MIME signers for the harvesting tests: keys and self-signed certificates made by the
 * real `openssl req` (RSA 2048 or EC P-256, an rfc822Name, a key usage), and signed mail
 * made by the real `openssl cms -sign` (multipart/signed, or opaque with -nodetach).
 * An expired certificate cannot be made by OpenSSL 3.0's `req` (no start date): that one
 * comes from @peculiar/x509 with the same shape.
 */
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { requireBinary } from './binaries.js';

export interface Signer {
  address: string;
  keyFile: string;
  certFile: string;
  der: Uint8Array;
}

export interface SignerOptions {
  key: 'rsa' | 'ec';
  /** keyUsage extension value; default what encryption needs for the key type. */
  keyUsage?: string;
  /** subjectAltName; default `email:<address>`. */
  subjectAltName?: string;
  /** Subject DN; default `/CN=<address>`. */
  subject?: string;
}

function derOfPem(file: string): Uint8Array {
  const pem = readFileSync(file, 'latin1');
  const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

export function makeSigner(dir: string, address: string, options: SignerOptions): Signer {
  const name = `${address.replace(/[^a-z0-9]/gi, '_')}-${options.key}-${Math.random().toString(36).slice(2, 8)}`;
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const usage =
    options.keyUsage ??
    (options.key === 'rsa' ? 'digitalSignature,keyEncipherment' : 'digitalSignature,keyAgreement');
  execFileSync(
    requireBinary('openssl'),
    [
      'req',
      '-x509',
      '-newkey',
      options.key === 'rsa' ? 'rsa:2048' : 'ec',
      ...(options.key === 'ec' ? ['-pkeyopt', 'ec_paramgen_curve:P-256'] : []),
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '30',
      '-subj',
      options.subject ?? `/CN=${address}`,
      '-addext',
      `subjectAltName=${options.subjectAltName ?? `email:${address}`}`,
      '-addext',
      `keyUsage=${usage}`,
      '-addext',
      'extendedKeyUsage=emailProtection',
    ],
    { stdio: 'pipe' },
  );
  return { address, keyFile, certFile, der: derOfPem(certFile) };
}

/** An RSA signer whose certificate expired yesterday (valid for a day, ten days ago). */
export async function makeExpiredSigner(dir: string, address: string): Promise<Signer> {
  const crypto = webcrypto;
  const algorithm = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const day = 86_400_000;
  type Params = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '0a1b2c',
      name: `CN=${address}`,
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
      keys: keys as unknown as Params[0]['keys'],
      signingAlgorithm: algorithm,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'email', value: address }]),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        ),
      ],
    },
    crypto as unknown as Params[1],
  );
  const name = `${address.replace(/[^a-z0-9]/gi, '_')}-expired`;
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  writeFileSync(
    keyFile,
    `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`,
  );
  writeFileSync(certFile, certificate.toString('pem'));
  return { address, keyFile, certFile, der: new Uint8Array(certificate.rawData) };
}

/**
 * A whole message signed by `signer` with `openssl cms -sign` (From/To/Subject headers,
 * then the signed entity): multipart/signed, or opaque signed-data with `opaque`.
 */
export function signedMail(
  dir: string,
  signer: Signer,
  to: string,
  body: string,
  options: { opaque?: boolean; from?: string } = {},
): Buffer {
  const input = join(dir, `content-${Math.random().toString(36).slice(2, 8)}.txt`);
  writeFileSync(input, body.replace(/\r?\n/g, '\r\n'));
  const out = execFileSync(
    requireBinary('openssl'),
    [
      'cms',
      '-sign',
      '-signer',
      signer.certFile,
      '-inkey',
      signer.keyFile,
      '-in',
      input,
      '-text',
      '-from',
      options.from ?? signer.address,
      '-to',
      to,
      '-subject',
      'signed hello',
      '-crlfeol',
      ...(options.opaque === true ? ['-nodetach'] : []),
    ],
    { stdio: 'pipe' },
  );
  return out;
}
