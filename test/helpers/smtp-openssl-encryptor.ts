/**
 * A real S/MIME encryptor for the MX tests, through `openssl cms -encrypt` (ECDH P-256
 * KeyAgreeRecipientInfo, AES-256-CBC), with an openssl-made group key and certificate.
 * It stands in for the recryption core's `smime.wrapMessage` where that is not wired:
 * the message goes to openssl on stdin and comes back on stdout, never touching disk.
 * The outer message keeps the listing headers (From, To, Cc, Date, Message-ID,
 * In-Reply-To, References, Subject — or "..." with hideSubject), like the core's profile.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import type { MessageEncryptor } from '../../src/smtp/ports.js';
import { requireBinary } from './binaries.js';
import { runOpenssl } from './openssl.js';

export interface OpensslGroup {
  name: string;
  certDer: Uint8Array;
  certPath: string;
  keyPath: string;
}

/** An EC P-256 group key and a self-signed certificate for it, in `dir`. */
export function makeOpensslGroup(dir: string, name: string): OpensslGroup {
  const openssl = requireBinary('openssl');
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  execFileSync(
    openssl,
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath],
    { stdio: 'ignore' },
  );
  execFileSync(
    openssl,
    [
      'req',
      '-new',
      '-x509',
      '-key',
      keyPath,
      '-out',
      certPath,
      '-days',
      '30',
      '-subj',
      `/CN=${name} group`,
    ],
    { stdio: 'ignore' },
  );
  const certDer = execFileSync(openssl, ['x509', '-in', certPath, '-outform', 'DER']);
  return { name, certDer: new Uint8Array(certDer), certPath, keyPath };
}

const LISTING_HEADERS = [
  'from',
  'to',
  'cc',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'subject',
];

/** The unfolded header fields of a message to keep outside the envelope. */
function listingHeaders(message: Uint8Array, hideSubject: boolean): string {
  const buffer = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  let end = buffer.indexOf('\r\n\r\n');
  if (end === -1) end = buffer.indexOf('\n\n');
  const head = buffer.subarray(0, end === -1 ? buffer.length : end).toString('utf8');
  const fields = head.split(/\r?\n(?![ \t])/);
  const kept: string[] = [];
  for (const field of fields) {
    const name = field.slice(0, field.indexOf(':')).trim().toLowerCase();
    if (!LISTING_HEADERS.includes(name)) continue;
    if (name === 'subject' && hideSubject) kept.push('Subject: ...');
    else kept.push(field.replace(/\r?\n/g, '\r\n'));
  }
  return kept.length > 0 ? `${kept.join('\r\n')}\r\n` : '';
}

/** The base64 body of an S/MIME enveloped-data message as DER, or undefined. */
export function envelopeDer(message: Uint8Array): Buffer | undefined {
  const buffer = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  let end = buffer.indexOf('\r\n\r\n');
  let sep = 4;
  if (end === -1) {
    end = buffer.indexOf('\n\n');
    sep = 2;
  }
  if (end === -1) return undefined;
  const head = buffer
    .subarray(0, end)
    .toString('latin1')
    .replace(/\r?\n[ \t]+/g, ' ');
  const type = /^content-type:[ \t]*application\/(x-)?pkcs7-mime\b([^\n]*)/im.exec(head);
  if (type === null || !/smime-type\s*=\s*"?enveloped-data/i.test(type[2] ?? '')) return undefined;
  return Buffer.from(buffer.subarray(end + sep).toString('latin1'), 'base64');
}

function issuerAndSerialOf(certDer: Uint8Array): Buffer {
  const cert = pkijs.Certificate.fromBER(certDer);
  const ias = new pkijs.IssuerAndSerialNumber({
    issuer: cert.issuer,
    serialNumber: cert.serialNumber,
  });
  return Buffer.from(ias.toSchema().toBER());
}

/** True when an enveloped-data recipient (key agreement or key transport) names the certificate. */
export function envelopeNamesCertificate(der: Uint8Array, certDer: Uint8Array): boolean {
  const wanted = issuerAndSerialOf(certDer);
  const envelope = new pkijs.EnvelopedData({ schema: pkijs.ContentInfo.fromBER(der).content });
  for (const info of envelope.recipientInfos) {
    if (info.value instanceof pkijs.KeyAgreeRecipientInfo) {
      for (const key of info.value.recipientEncryptedKeys.encryptedKeys) {
        if (
          key.rid.value instanceof pkijs.IssuerAndSerialNumber &&
          wanted.equals(Buffer.from(key.rid.value.toSchema().toBER()))
        )
          return true;
      }
    } else if (
      info.value instanceof pkijs.KeyTransRecipientInfo &&
      info.value.rid instanceof pkijs.IssuerAndSerialNumber
    ) {
      if (wanted.equals(Buffer.from(info.value.rid.toSchema().toBER()))) return true;
    }
  }
  return false;
}

export interface OpensslEncryptorOptions {
  /** Where certificates are written for openssl's -recip (certificates only, no mail). */
  dir: string;
  hideSubject?: boolean;
}

export function opensslEncryptor(options: OpensslEncryptorOptions): MessageEncryptor {
  const certPaths = new Map<string, string>();
  const certPathFor = (certDer: Uint8Array): string => {
    const id = createHash('sha256').update(certDer).digest('hex');
    let path = certPaths.get(id);
    if (path === undefined) {
      path = join(options.dir, `recip-${id.slice(0, 16)}.der`);
      writeFileSync(path, certDer);
      certPaths.set(id, path);
    }
    return path;
  };
  return {
    async encryptForGroup(message, groupCertificate) {
      const smime = await runOpenssl(
        [
          'cms',
          '-encrypt',
          '-binary',
          '-aes256',
          '-crlfeol',
          '-recip',
          certPathFor(groupCertificate),
          '-keyopt',
          'ecdh_kdf_md:sha256',
        ],
        message,
      );
      // -crlfeol covers openssl's headers only; its base64 lines end in LF. Mail is CRLF.
      const crlf = Buffer.from(smime.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
      return Buffer.concat([
        Buffer.from(listingHeaders(message, options.hideSubject ?? false), 'utf8'),
        crlf,
      ]);
    },
    isAlreadyForGroup(message, groupCertificate) {
      const der = envelopeDer(message);
      if (der === undefined) return false;
      try {
        return envelopeNamesCertificate(der, groupCertificate);
      } catch {
        return false;
      }
    },
  };
}

/** `openssl cms -decrypt` with the group key: the content inside a stored S/MIME message. */
export function opensslDecrypt(stored: Uint8Array, group: OpensslGroup): Promise<Buffer> {
  return runOpenssl(
    ['cms', '-decrypt', '-binary', '-recip', group.certPath, '-inkey', group.keyPath],
    stored,
  );
}
