/**
 * KeyTransRecipientInfo (RFC 5652 §6.2.1) for RSA recipients of a submitted message
 * (docs/sending.md "RSA recipients"): the content key encrypted to the certificate's RSA
 * key with RSAES-OAEP (RFC 8017, parameters as RFC 4055 §4.1 writes them) or, for clients
 * that read nothing else, PKCS#1 v1.5 (rsaEncryption). rid = IssuerAndSerialNumber.
 */
import { X509Certificate, constants, publicEncrypt } from 'node:crypto';
import { RecryptError } from './errors.js';
import { TAG, encodeOid, encodeTlv, expectTlv, readChildren, tlvBytes } from './der.js';

export type RsaKeyTransportScheme = 'rsa-pkcs1' | 'rsa-oaep-sha1' | 'rsa-oaep-sha256';

export interface KeyTransportRecipient {
  /** DER of the recipient's certificate, with an RSA key. */
  certificate: Uint8Array;
  scheme: RsaKeyTransportScheme;
}

const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const OID_RSAES_OAEP = '1.2.840.113549.1.1.7';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const NULL = Uint8Array.of(0x05, 0x00);

/** The certificate's IssuerAndSerialNumber, as a RecipientIdentifier. */
export function issuerAndSerialNumber(der: Uint8Array): Uint8Array {
  const cert = expectTlv(der, 0, TAG.SEQUENCE, der.length, 'Certificate');
  const tbs = readChildren(der, cert, 3)[0];
  if (tbs?.tag !== TAG.SEQUENCE) throw new RecryptError('malformed-der', 'no tbsCertificate');
  const fields = readChildren(der, tbs, 16);
  let i = fields[0]?.tag === TAG.context(0) ? 1 : 0;
  const serial = fields[i++];
  i++; // signature algorithm
  const issuer = fields[i];
  if (serial?.tag !== TAG.INTEGER || issuer?.tag !== TAG.SEQUENCE)
    throw new RecryptError('malformed-der', 'certificate fields out of order');
  return encodeTlv(TAG.SEQUENCE, tlvBytes(der, issuer), tlvBytes(der, serial));
}

function algorithmIdentifier(scheme: RsaKeyTransportScheme): Uint8Array {
  switch (scheme) {
    case 'rsa-pkcs1':
      return encodeTlv(TAG.SEQUENCE, encodeOid(OID_RSA_ENCRYPTION), NULL);
    case 'rsa-oaep-sha1':
      // Every parameter at its default (SHA-1, MGF1 with SHA-1, empty label): RFC 4055 §4.1.
      return encodeTlv(TAG.SEQUENCE, encodeOid(OID_RSAES_OAEP), encodeTlv(TAG.SEQUENCE));
    case 'rsa-oaep-sha256': {
      const sha256 = encodeTlv(TAG.SEQUENCE, encodeOid(OID_SHA256), NULL);
      return encodeTlv(
        TAG.SEQUENCE,
        encodeOid(OID_RSAES_OAEP),
        encodeTlv(
          TAG.SEQUENCE,
          encodeTlv(TAG.context(0), sha256),
          encodeTlv(TAG.context(1), encodeTlv(TAG.SEQUENCE, encodeOid(OID_MGF1), sha256)),
        ),
      );
    }
  }
}

/** One KeyTransRecipientInfo wrapping `contentKey` for the recipient. */
export function keyTransRecipientInfo(
  recipient: KeyTransportRecipient,
  contentKey: Uint8Array,
): Uint8Array {
  const der = recipient.certificate;
  let publicKey;
  try {
    publicKey = new X509Certificate(der).publicKey;
  } catch {
    throw new RecryptError('malformed-der', 'unreadable recipient certificate');
  }
  if (publicKey.asymmetricKeyType !== 'rsa')
    throw new RecryptError('unsupported', 'key transport needs an RSA certificate');
  const encryptedKey =
    recipient.scheme === 'rsa-pkcs1'
      ? publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, contentKey)
      : publicEncrypt(
          {
            key: publicKey,
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: recipient.scheme === 'rsa-oaep-sha256' ? 'sha256' : 'sha1',
          },
          contentKey,
        );
  return encodeTlv(
    TAG.SEQUENCE,
    encodeTlv(TAG.INTEGER, Uint8Array.of(0)),
    issuerAndSerialNumber(der),
    algorithmIdentifier(recipient.scheme),
    encodeTlv(TAG.OCTET_STRING, encryptedKey),
  );
}
