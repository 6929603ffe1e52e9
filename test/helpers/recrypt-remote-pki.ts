/**
 * Identities for the remote-member tests: remote people's own S/MIME
 * certificates as the openssl CLI makes them — self-signed or from a CA of their own,
 * any DN, any serial — and list groups from the project's own certificate code.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
} from '../../src/recrypt/certificates.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import type { Scalar } from '../../src/recrypt/types.js';
import { requireBinary } from './binaries.js';
import { writeIdentity } from './lists-world.js';
import { secretOfKeyFile } from './recrypt-openssl-pki.js';

export interface RemoteIdentity {
  certPath: string;
  keyPath: string;
  certDer: Uint8Array;
  secret: Scalar;
}

export interface ListGroupIdentity extends RemoteIdentity {
  /** The group certificate's RecipientId, lowercase hex. */
  groupId: string;
}

/** A DN of seven attributes with non-ASCII text: its IssuerAndSerialNumber exceeds 256 bytes. */
export const LONG_DN =
  '/C=DE/ST=Nordrhein-Westfalen/L=Mülheim an der Ruhr' +
  '/O=Gesellschaft für sehr lange Organisationsnamen mbH & Co. KG' +
  '/OU=Abteilung für Ende-zu-Ende-Verschlüsselung und Verteiler' +
  '/CN=Dr. Alexandra Beispiel-Musterfrau' +
  '/emailAddress=alexandra.beispiel-musterfrau@remote.example';

/** Runs the openssl CLI; its progress output stays out of the test log, errors carry it. */
export function opensslSync(args: string[]): Buffer {
  return execFileSync(requireBinary('openssl'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function load(certPath: string, keyPath: string): RemoteIdentity {
  const certDer = new Uint8Array(opensslSync(['x509', '-in', certPath, '-outform', 'DER']));
  return { certPath, keyPath, certDer, secret: secretOfKeyFile(keyPath) };
}

const newKey = (curve: string) => ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`];

/** `openssl req -x509 -newkey ec`: a self-signed certificate with the given subject and serial. */
export function selfSignedRemote(
  dir: string,
  name: string,
  subject: string,
  serial: string,
  curve = 'P-256',
): RemoteIdentity {
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  opensslSync([
    'req',
    '-x509',
    ...newKey(curve),
    '-noenc',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-utf8',
    '-subj',
    subject,
    '-days',
    '30',
    '-set_serial',
    serial,
  ]);
  return load(certPath, keyPath);
}

/** A leaf with `subject` and an 8-byte serial, issued by a CA with a DN of its own. */
export function caIssuedRemote(dir: string, name: string, subject: string): RemoteIdentity {
  const ca = selfSignedRemote(
    dir,
    `${name}-ca`,
    '/C=NL/O=Remote Trust Services B.V./OU=Secure Mail Issuing/CN=Remote Mail CA 2026',
    '0x7a' + randomBytes(8).toString('hex'),
  );
  const csr = join(dir, `${name}.csr`);
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    'basicConstraints = CA:FALSE\nkeyUsage = critical, keyAgreement\nextendedKeyUsage = emailProtection\n',
  );
  const request = ['req', '-new', ...newKey('P-256'), '-noenc', '-keyout', keyPath, '-out', csr];
  opensslSync([...request, '-utf8', '-subj', subject]);
  opensslSync([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certPath,
    '-CAkey',
    ca.keyPath,
    '-set_serial',
    '0x1f2e3d4c5b6a7988',
    '-days',
    '30',
    '-extfile',
    ext,
    '-out',
    certPath,
  ]);
  return load(certPath, keyPath);
}

/** A list group key (random g) certified by a fresh owner CA, as the list owner's CLI makes it. */
export async function listGroupKey(
  dir: string,
  address: string,
  tag: string,
): Promise<ListGroupIdentity> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const secret = randomScalar();
  const certDer = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(secret),
    address,
    now,
  });
  return {
    ...writeIdentity(dir, `${address}-${tag}`, certDer, secret),
    secret,
    groupId: Buffer.from(recipientIdOf(certDer)).toString('hex'),
  };
}
