/**
 * Whether a verified signer's certificate may be harvested as a recipient key
 * (docs/sending.md "Harvested certificates"): it names the message's From address
 * (subjectAltName rfc822Name, or emailAddress in the subject), it is valid now, its key
 * is one submission can encrypt to (RSA of 2048 bits or more, or EC P-256), and its key
 * usage allows that (keyEncipherment for RSA, keyAgreement for EC; no keyUsage extension
 * allows both, RFC 5280 §4.2.1.3), and an extended key usage, when present, includes
 * emailProtection.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { HarvestedKeyType } from './types.js';

const OID_EMAIL_ADDRESS = '1.2.840.113549.1.9.1';
const OID_EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';
const OID_ANY_EKU = '2.5.29.37.0';
const MIN_RSA_BITS = 2048;

export interface UsableCertificate {
  keyType: HarvestedKeyType;
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
}

/** The certificate's mail addresses, lower-case: subjectAltName rfc822Names and emailAddress. */
export function certificateAddresses(certificate: x509.X509Certificate): string[] {
  const addresses: string[] = [];
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  for (const name of san?.names.items ?? [])
    if (name.type === 'email') addresses.push(name.value.trim().toLowerCase());
  for (const value of certificate.subjectName.getField(OID_EMAIL_ADDRESS))
    addresses.push(value.trim().toLowerCase());
  return addresses;
}

/** Why `der` cannot be harvested for `address`, or what it is. */
export function checkSignerCertificate(
  der: Uint8Array,
  address: string,
  now: Date,
): UsableCertificate | { reason: string } {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(der);
  } catch {
    return { reason: 'unreadable certificate' };
  }
  if (!certificateAddresses(certificate).includes(address.toLowerCase()))
    return { reason: 'the certificate does not name the From address' };
  if (certificate.notBefore.getTime() > now.getTime()) return { reason: 'not valid yet' };
  if (certificate.notAfter.getTime() <= now.getTime()) return { reason: 'expired' };
  let keyType: HarvestedKeyType;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({
      key: Buffer.from(certificate.publicKey.rawData),
      format: 'der',
      type: 'spki',
    });
  } catch {
    return { reason: 'unreadable public key' };
  }
  const details = publicKey.asymmetricKeyDetails;
  if (publicKey.asymmetricKeyType === 'rsa') {
    if ((details?.modulusLength ?? 0) < MIN_RSA_BITS) return { reason: 'RSA key under 2048 bits' };
    keyType = 'rsa';
  } else if (publicKey.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') {
    keyType = 'ec-p256';
  } else return { reason: 'key type not supported (RSA or EC P-256 only)' };
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  if (usage !== null) {
    const needed =
      keyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.keyAgreement;
    if ((usage.usages & needed) === 0)
      return {
        reason: `key usage does not allow encryption (${keyType === 'rsa' ? 'keyEncipherment' : 'keyAgreement'} missing)`,
      };
  }
  const extended = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  if (
    extended !== null &&
    !extended.usages.some((u) => u === OID_EMAIL_PROTECTION || u === OID_ANY_EKU)
  )
    return { reason: 'extended key usage without emailProtection' };
  return {
    keyType,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}
