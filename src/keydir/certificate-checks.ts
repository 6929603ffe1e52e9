/**
 * Whether a verified signer's certificate may be harvested as a recipient key
 * (docs/sending.md "Certificates harvested from signed mail"): it names the message's
 * From address (subjectAltName rfc822Name, or emailAddress in the subject), it is valid
 * now, its key is one submission can encrypt to (RSA of 2048 bits or more, or EC P-256),
 * and its key usage allows that (keyEncipherment for RSA, keyAgreement for EC; no
 * keyUsage extension allows both, RFC 5280 §4.2.1.3), and an extended key usage, when
 * present, includes emailProtection.
 *
 * It reads the certificate pkijs already parsed while verifying the signature, and
 * node:crypto for the key: parsing it again would cost more than the checks themselves.
 */
import { createHash, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import type { HarvestedKeyType } from './types.js';

const OID_EMAIL_ADDRESS = '1.2.840.113549.1.9.1';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXTENDED_KEY_USAGE = '2.5.29.37';
const OID_EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';
const OID_ANY_EKU = '2.5.29.37.0';
/** GeneralName CHOICE [1] rfc822Name. */
const RFC822_NAME = 1;
/** KeyUsage bits in the first octet (RFC 5280 §4.2.1.3): bit 2 and bit 4. */
const KEY_ENCIPHERMENT = 0x20;
const KEY_AGREEMENT = 0x08;
const MIN_RSA_BITS = 2048;

export interface UsableCertificate {
  keyType: HarvestedKeyType;
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
}

function extension(certificate: pkijs.Certificate, oid: string): pkijs.Extension | undefined {
  return certificate.extensions?.find((e) => e.extnID === oid);
}

/** The certificate's mail addresses, lower-case: subjectAltName rfc822Names and emailAddress. */
export function certificateAddresses(certificate: pkijs.Certificate): string[] {
  const addresses: string[] = [];
  const san = extension(certificate, OID_SUBJECT_ALT_NAME)?.parsedValue as
    pkijs.AltName | undefined;
  for (const name of san?.altNames ?? [])
    if (name.type === RFC822_NAME && typeof name.value === 'string')
      addresses.push(name.value.trim().toLowerCase());
  for (const attribute of certificate.subject.typesAndValues)
    if (attribute.type === OID_EMAIL_ADDRESS)
      addresses.push(String(attribute.value.valueBlock.value).trim().toLowerCase());
  return addresses;
}

/** The first KeyUsage octet, or null without the extension. */
function keyUsageBits(certificate: pkijs.Certificate): number | null {
  const usage = extension(certificate, OID_KEY_USAGE)?.parsedValue as unknown;
  if (!(usage instanceof asn1js.BitString)) return extension(certificate, OID_KEY_USAGE) ? 0 : null;
  return new Uint8Array(usage.valueBlock.valueHexView)[0] ?? 0;
}

/** Why the signer certificate cannot be harvested for `address`, or what it is. */
export function checkSignerCertificate(
  certificate: pkijs.Certificate,
  der: Uint8Array,
  address: string,
  now: Date,
): UsableCertificate | { reason: string } {
  if (!certificateAddresses(certificate).includes(address.toLowerCase()))
    return { reason: 'the certificate does not name the From address' };
  const notBefore = certificate.notBefore.value;
  const notAfter = certificate.notAfter.value;
  if (notBefore.getTime() > now.getTime()) return { reason: 'not valid yet' };
  if (notAfter.getTime() <= now.getTime()) return { reason: 'expired' };
  let publicKey;
  try {
    publicKey = new X509Certificate(der).publicKey;
  } catch {
    return { reason: 'unreadable certificate' };
  }
  const details = publicKey.asymmetricKeyDetails;
  let keyType: HarvestedKeyType;
  if (publicKey.asymmetricKeyType === 'rsa') {
    if ((details?.modulusLength ?? 0) < MIN_RSA_BITS) return { reason: 'RSA key under 2048 bits' };
    keyType = 'rsa';
  } else if (publicKey.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') {
    keyType = 'ec-p256';
  } else return { reason: 'key type not supported (RSA or EC P-256 only)' };
  const usage = keyUsageBits(certificate);
  const needed = keyType === 'rsa' ? KEY_ENCIPHERMENT : KEY_AGREEMENT;
  if (usage !== null && (usage & needed) === 0)
    return {
      reason: `key usage does not allow encryption (${keyType === 'rsa' ? 'keyEncipherment' : 'keyAgreement'} missing)`,
    };
  const extended = extension(certificate, OID_EXTENDED_KEY_USAGE);
  if (extended !== undefined) {
    const purposes = (extended.parsedValue as pkijs.ExtKeyUsage | undefined)?.keyPurposes ?? [];
    if (!purposes.some((p) => p === OID_EMAIL_PROTECTION || p === OID_ANY_EKU))
      return { reason: 'extended key usage without emailProtection' };
  }
  return {
    keyType,
    notBefore,
    notAfter,
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}
