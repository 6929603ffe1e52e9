/**
 * Keys for the proxy's tests: one owner CA, one group (a user's mailbox) and devices,
 * issued with the project's own certificate code, written as PEM files for openssl; S/MIME
 * messages encrypted to the group by real `openssl cms -encrypt`; decryption by real
 * `openssl cms -decrypt` with a device's or the group's key.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
  toPem,
} from '../../src/recrypt/certificates.js';
import {
  privateKeyObject,
  publicPoint,
  randomScalar,
  recryptionKey,
} from '../../src/recrypt/scalar.js';
import type { DeviceRecryptKeys, Scalar } from '../../src/recrypt/types.js';
import { runOpenssl } from './openssl.js';

export interface PemIdentity {
  certDer: Uint8Array;
  certPath: string;
  keyPath: string;
}

export interface TestDevice extends PemIdentity {
  deviceId: string;
  password: string;
  keys: DeviceRecryptKeys;
}

export interface TestUser {
  address: string;
  /** DER of the owner CA that issued the group and device certificates. */
  ownerCa: Uint8Array;
  group: PemIdentity;
  devices: TestDevice[];
}

function keyPem(secret: Scalar): string {
  return privateKeyObject(secret).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function writePem(dir: string, name: string, certDer: Uint8Array, secret: Scalar): PemIdentity {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  writeFileSync(certPath, toPem(certDer));
  writeFileSync(keyPath, keyPem(secret), { mode: 0o600 });
  return { certDer, certPath, keyPath };
}

/** A user with a group key and `deviceCount` devices, each with its own recryption key. */
export async function makeTestUser(
  dir: string,
  address: string,
  deviceCount: number,
): Promise<TestUser> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const g = randomScalar();
  const groupCert = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(g),
    address,
    now,
  });
  const group = writePem(dir, `${address}-group`, groupCert, g);
  const groupId = Buffer.from(recipientIdOf(groupCert)).toString('hex');
  const devices: TestDevice[] = [];
  for (let i = 0; i < deviceCount; i++) {
    const d = randomScalar();
    const name = `device-${i + 1}`;
    const certDer = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(d),
      address,
      name,
      now,
    });
    devices.push({
      ...writePem(dir, `${address}-${name}`, certDer, d),
      deviceId: name,
      password: `pw-${name}-${Math.random().toString(36).slice(2)}`,
      keys: {
        deviceId: recipientIdOf(certDer),
        wrapEncoding: 'absent',
        keys: new Map([[groupId, recryptionKey(g, d)]]),
      },
    });
  }
  return { address, ownerCa: ca.certificate, group, devices };
}

/**
 * An S/MIME message (CRLF line endings) whose envelope, made by real openssl, is for the
 * group; the content is `original` byte for byte.
 */
export async function encryptToGroup(
  original: Uint8Array,
  group: PemIdentity,
  subject = 'test',
): Promise<Buffer> {
  const der = await runOpenssl(
    [
      'cms',
      '-encrypt',
      '-binary',
      '-aes256',
      '-recip',
      group.certPath,
      '-keyopt',
      'ecdh_kdf_md:sha256',
      '-outform',
      'DER',
    ],
    original,
  );
  const lines = der.toString('base64').match(/.{1,76}/g) ?? [];
  const head = [
    'From: sender@example.org',
    `Subject: ${subject}`,
    'MIME-Version: 1.0',
    'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
    'Content-Disposition: attachment; filename="smime.p7m"',
    'Content-Transfer-Encoding: base64',
  ].join('\r\n');
  return Buffer.from(`${head}\r\n\r\n${lines.join('\r\n')}\r\n`, 'latin1');
}

/** Decrypts an S/MIME message with a device's (or the group's) key; rejects when it cannot. */
export function decryptWith(message: Uint8Array, who: PemIdentity): Promise<Buffer> {
  return runOpenssl(
    [
      'cms',
      '-decrypt',
      '-binary',
      '-inform',
      'SMIME',
      '-recip',
      who.certPath,
      '-inkey',
      who.keyPath,
    ],
    message,
  );
}
