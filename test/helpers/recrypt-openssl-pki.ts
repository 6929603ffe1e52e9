/**
 * A test PKI made with the openssl CLI, independent of the project's own certificate
 * code: one EC P-256 CA with a fixed DN, and group/device certificates it issues with
 * 16-byte positive serials, so every RecipientId has the same length (docs/design.md §2).
 * Also the oracle: `openssl cms -decrypt` with a party's certificate and key.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRecipientCertificate } from '../../src/recrypt/envelope.js';
import type { RecipientId, Scalar } from '../../src/recrypt/types.js';
import { requireBinary } from './binaries.js';

/** A fixed CA DN of the project's shape: CN = a 34-character UDF-like fingerprint. */
export const TEST_CA_DN = '/CN=MB2G-K4DB-NAQP-5KHL-ZLEV-ACDT-RX4Q';

export interface Party {
  name: string;
  certPath: string;
  keyPath: string;
  certDer: Uint8Array;
  certPem: Uint8Array;
  secret: Scalar;
  recipientId: RecipientId;
}

export interface OpensslPki {
  dir: string;
  ca: Party;
  /** Issues a new party (group or device: the same shape) signed by the CA. */
  issue(name: string): Party;
}

function run(openssl: string, args: string[]): void {
  execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The private scalar of an EC key file (via JWK, no text parsing). */
export function secretOfKeyFile(path: string): Scalar {
  const jwk = createPrivateKey(readFileSync(path)).export({ format: 'jwk' });
  return BigInt('0x' + Buffer.from(jwk.d!, 'base64url').toString('hex'));
}

function load(openssl: string, name: string, certPath: string, keyPath: string): Party {
  const certPem = new Uint8Array(readFileSync(certPath));
  const certDer = new Uint8Array(
    execFileSync(openssl, ['x509', '-in', certPath, '-outform', 'DER']),
  );
  return {
    name,
    certPath,
    keyPath,
    certDer,
    certPem,
    secret: secretOfKeyFile(keyPath),
    recipientId: readRecipientCertificate(certDer).recipientId,
  };
}

/** A 16-byte serial with a first byte in [0x01, 0x7f]: positive, exactly 16 content bytes. */
function serialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return bytes.toString('hex');
}

export function makeOpensslPki(dir: string): OpensslPki {
  const openssl = requireBinary('openssl');
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.pem');
  run(openssl, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
  run(openssl, [
    'req',
    '-new',
    '-x509',
    '-key',
    caKey,
    '-subj',
    TEST_CA_DN,
    '-days',
    '3650',
    '-set_serial',
    '0x' + serialHex(),
    '-out',
    caCert,
  ]);
  const ca = load(openssl, 'ca', caCert, caKey);
  const ext = join(dir, 'leaf.ext');
  writeFileSync(ext, 'keyUsage = critical, keyAgreement\nbasicConstraints = CA:FALSE\n');
  return {
    dir,
    ca,
    issue(name: string): Party {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      run(openssl, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      run(openssl, ['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
      run(openssl, [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-set_serial',
        '0x' + serialHex(),
        '-days',
        '365',
        '-extfile',
        ext,
        '-out',
        cert,
      ]);
      return load(openssl, name, cert, key);
    },
  };
}

export interface OracleResult {
  ok: boolean;
  output: Buffer;
  stderr: string;
}

/**
 * `openssl cms -decrypt -recip <cert> -inkey <key>` on `input` (S/MIME text or DER).
 * Plain `-decrypt` (no -binary, no -text) copies the content out unchanged.
 */
export function opensslDecrypt(
  dir: string,
  input: Uint8Array,
  party: Pick<Party, 'certPath' | 'keyPath'>,
  inform: 'SMIME' | 'DER' = 'SMIME',
): OracleResult {
  const openssl = requireBinary('openssl');
  const inPath = join(dir, `in-${randomBytes(6).toString('hex')}`);
  const outPath = `${inPath}.out`;
  writeFileSync(inPath, input);
  const result = spawnSync(
    openssl,
    [
      'cms',
      '-decrypt',
      '-inform',
      inform,
      '-in',
      inPath,
      '-recip',
      party.certPath,
      '-inkey',
      party.keyPath,
      '-out',
      outPath,
    ],
    { encoding: 'buffer' },
  );
  const ok = result.status === 0;
  return {
    ok,
    output: ok ? readFileSync(outPath) : Buffer.alloc(0),
    stderr: result.stderr.toString('utf8'),
  };
}

/**
 * `openssl cms -encrypt` as an end-to-end sender would: ECDH with an sha256 KDF to each
 * recipient, AES-256-CBC (or GCM) content; DER output, or S/MIME with `smime`.
 */
export function opensslEncrypt(
  dir: string,
  content: Uint8Array,
  recipients: Array<Pick<Party, 'certPath'>>,
  options: {
    cipher?: 'aes128' | 'aes192' | 'aes256' | 'aes-256-gcm';
    kdf?: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
    stream?: boolean;
    outform?: 'DER' | 'SMIME';
  } = {},
): Buffer {
  const openssl = requireBinary('openssl');
  const inPath = join(dir, `plain-${randomBytes(6).toString('hex')}`);
  writeFileSync(inPath, content);
  const args = [
    'cms',
    '-encrypt',
    '-binary',
    `-${options.cipher ?? 'aes256'}`,
    '-in',
    inPath,
    '-outform',
    options.outform ?? 'DER',
  ];
  if (options.stream) args.push('-stream');
  for (const r of recipients)
    args.push('-recip', r.certPath, '-keyopt', `ecdh_kdf_md:${options.kdf ?? 'sha256'}`);
  return execFileSync(openssl, args, { maxBuffer: 64 * 1024 * 1024 });
}
