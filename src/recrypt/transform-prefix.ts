/**
 * Reads the prefix of a CMS EnvelopedData / AuthEnvelopedData up to the end of its
 * recipientInfos, and reports every KeyAgreeRecipientInfo with the offsets of the two
 * fields recryption changes (originator point, recipient identifier). Shared by the
 * transform, `isEnvelopeForGroup` and decryption.
 *
 * Indefinite lengths are accepted on the three outer wrappers only (ContentInfo, its [0],
 * the EnvelopedData SEQUENCE): streaming encoders (OpenSSL `-stream`, NSS) write them
 * there, and the transform needs only their headers. Everything from recipientInfos
 * inward must be DER with definite lengths.
 */
import { RecryptError } from './errors.js';
import {
  DerTruncatedError,
  MAX_DER_DEPTH,
  TAG,
  bytesEqual,
  checkTree,
  expectTlv,
  oidContent,
  readChildren,
  readTlv,
  tlvBytes,
  type Tlv,
} from './der.js';
import type { WrapEncoding } from './types.js';

export const OID = {
  data: '1.2.840.113549.1.7.1',
  envelopedData: '1.2.840.113549.1.7.3',
  authEnvelopedData: '1.2.840.113549.1.9.16.1.23',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  stdDhSha256Kdf: '1.3.132.1.11.1',
  aes256Wrap: '2.16.840.1.101.3.4.1.45',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  aes256Gcm: '2.16.840.1.101.3.4.1.46',
} as const;

const ENVELOPED = oidContent(OID.envelopedData);
const AUTH_ENVELOPED = oidContent(OID.authEnvelopedData);
const EC_PUBLIC_KEY = oidContent(OID.ecPublicKey);
const PRIME256V1 = oidContent(OID.prime256v1);

/** The longest CMS prefix (through recipientInfos) the transform will read: ~200 recipients. */
export const MAX_CMS_PREFIX = 64 * 1024;

/** One RecipientEncryptedKey of a KeyAgreeRecipientInfo. */
export interface KariRecipient {
  /** Offset of the rid element (issuerAndSerialNumber SEQUENCE or [0] rKeyId). */
  ridOffset: number;
  /** The rid element's bytes (a view): for issuerAndSerialNumber, a RecipientId. */
  rid: Uint8Array;
  isIssuerAndSerial: boolean;
  encryptedKey: Uint8Array;
}

export interface KariInfo {
  /** Position among all recipientInfos. */
  index: number;
  tlv: Tlv;
  /** Offset and bytes of the originator's public point (the BIT STRING's value), if it has one. */
  originatorPoint: { offset: number; bytes: Uint8Array } | null;
  /** False when the originator key names a curve other than P-256. */
  originatorOnP256: boolean;
  /** The ukm's OCTET STRING content, when present. */
  ukm: Uint8Array | null;
  /** Content of the key-agreement algorithm OID. */
  keyAgreementOid: Uint8Array;
  /** The key-wrap AlgorithmIdentifier exactly as encoded (it enters the KDF's SharedInfo). */
  wrapAlgorithm: Uint8Array | null;
  wrapOid: Uint8Array | null;
  wrapEncoding: WrapEncoding | 'other';
  recipients: KariRecipient[];
}

export interface EnvelopePrefix {
  kind: 'enveloped' | 'authEnveloped';
  /** The EnvelopedData / AuthEnvelopedData SEQUENCE (its end may be Infinity). */
  envelope: Tlv;
  recipientInfos: Tlv;
  karis: KariInfo[];
  /** Recipient infos of other kinds (KeyTrans, KEK, password, other). */
  otherRecipientInfos: number;
}

function malformed(message: string): never {
  throw new RecryptError('malformed-der', message);
}

/**
 * Parses the CMS prefix of `der`. Throws DerTruncatedError when `der` ends too early,
 * RecryptError 'unsupported' when it is not an (Auth)EnvelopedData, 'malformed-der'
 * when it is broken, and 'too-large' when recipientInfos end beyond `maxPrefix`.
 */
export function parseEnvelopePrefix(der: Uint8Array, maxPrefix = MAX_CMS_PREFIX): EnvelopePrefix {
  const contentInfo = readTlv(der, 0, { allowIndefinite: true });
  if (contentInfo.tag !== TAG.SEQUENCE) throw new RecryptError('unsupported', 'not a ContentInfo');
  const type = readTlv(der, contentInfo.contentOffset, {
    limit: contentInfo.end,
    requireContent: true,
  });
  if (type.tag !== TAG.OID) throw new RecryptError('unsupported', 'not a ContentInfo');
  const typeOid = der.subarray(type.contentOffset, type.end);
  let kind: EnvelopePrefix['kind'];
  if (bytesEqual(typeOid, ENVELOPED)) kind = 'enveloped';
  else if (bytesEqual(typeOid, AUTH_ENVELOPED)) kind = 'authEnveloped';
  else throw new RecryptError('unsupported', 'content type is not (Auth)EnvelopedData');

  const explicit = readTlv(der, type.end, { limit: contentInfo.end, allowIndefinite: true });
  if (explicit.tag !== TAG.context(0)) malformed('ContentInfo content is not [0]');
  const envelope = readTlv(der, explicit.contentOffset, {
    limit: explicit.end,
    allowIndefinite: true,
  });
  if (envelope.tag !== TAG.SEQUENCE) malformed('EnvelopedData is not a SEQUENCE');
  const version = expectTlv(der, envelope.contentOffset, TAG.INTEGER, envelope.end, 'version');
  let at = version.end;
  let next = readTlv(der, at, { limit: envelope.end });
  if (next.tag === TAG.context(0)) {
    // originatorInfo (certificates, CRLs): skipped, but it must be there in full.
    if (next.end > maxPrefix) throw new RecryptError('too-large', 'originatorInfo too large');
    next = readTlv(der, at, { limit: envelope.end, requireContent: true });
    at = next.end;
    next = readTlv(der, at, { limit: envelope.end });
  }
  if (next.tag !== TAG.SET) malformed('recipientInfos is not a SET');
  if (next.end > maxPrefix) {
    throw new RecryptError('too-large', `recipientInfos end at ${next.end}, beyond ${maxPrefix}`);
  }
  if (next.end > der.length) throw new DerTruncatedError(next.end);
  const recipientInfos = checkTree(der, at, envelope.end, MAX_DER_DEPTH);

  const karis: KariInfo[] = [];
  let others = 0;
  readChildren(der, recipientInfos).forEach((info, index) => {
    if (info.tag === TAG.context(1)) karis.push(parseKari(der, info, index));
    else others++;
  });
  return { kind, envelope, recipientInfos, karis, otherRecipientInfos: others };
}

function parseKari(der: Uint8Array, tlv: Tlv, index: number): KariInfo {
  const fields = readChildren(der, tlv, 8);
  let i = 0;
  const take = (tag: number, what: string): Tlv => {
    const field = fields[i++];
    if (field === undefined || field.tag !== tag)
      malformed(`KeyAgreeRecipientInfo ${what} missing`);
    return field;
  };
  take(TAG.INTEGER, 'version');
  const originator = take(TAG.context(0), 'originator');
  let ukm: Uint8Array | null = null;
  if (fields[i]?.tag === TAG.context(1)) {
    const wrapper = fields[i++]!;
    const octets = readChildren(der, wrapper, 1)[0];
    if (octets === undefined || octets.tag !== TAG.OCTET_STRING)
      malformed('ukm is not an OCTET STRING');
    ukm = der.subarray(octets.contentOffset, octets.end);
  }
  const algorithm = take(TAG.SEQUENCE, 'keyEncryptionAlgorithm');
  const encryptedKeys = take(TAG.SEQUENCE, 'recipientEncryptedKeys');
  if (i !== fields.length) malformed('KeyAgreeRecipientInfo has extra fields');

  // originator [0] EXPLICIT OriginatorIdentifierOrKey; originatorKey is [1] IMPLICIT SEQUENCE.
  let originatorPoint: KariInfo['originatorPoint'] = null;
  let originatorOnP256 = true;
  const choice = readChildren(der, originator, 1)[0];
  if (choice?.tag === TAG.context(1)) {
    const [alg, key] = readChildren(der, choice, 2);
    if (alg?.tag !== TAG.SEQUENCE || key?.tag !== TAG.BIT_STRING)
      malformed('bad OriginatorPublicKey');
    const [algOid, params] = readChildren(der, alg, 2);
    if (
      algOid?.tag !== TAG.OID ||
      !bytesEqual(der.subarray(algOid.contentOffset, algOid.end), EC_PUBLIC_KEY)
    ) {
      originatorOnP256 = false;
    } else if (params !== undefined && params.tag === TAG.OID) {
      originatorOnP256 = bytesEqual(der.subarray(params.contentOffset, params.end), PRIME256V1);
    } else if (params !== undefined && !(params.tag === TAG.NULL && params.contentLength === 0)) {
      originatorOnP256 = false;
    }
    if (key.contentLength < 1 || der[key.contentOffset] !== 0)
      malformed('BIT STRING with unused bits');
    originatorPoint = {
      offset: key.contentOffset + 1,
      bytes: der.subarray(key.contentOffset + 1, key.end),
    };
  }

  const [kaOid, wrap] = readChildren(der, algorithm, 2);
  if (kaOid?.tag !== TAG.OID) malformed('keyEncryptionAlgorithm has no OID');
  let wrapAlgorithm: Uint8Array | null = null;
  let wrapOid: Uint8Array | null = null;
  let wrapEncoding: KariInfo['wrapEncoding'] = 'other';
  if (wrap?.tag === TAG.SEQUENCE) {
    wrapAlgorithm = tlvBytes(der, wrap);
    const [oid, params, extra] = readChildren(der, wrap, 3);
    if (oid?.tag === TAG.OID && extra === undefined) {
      wrapOid = der.subarray(oid.contentOffset, oid.end);
      if (params === undefined) wrapEncoding = 'absent';
      else if (params.tag === TAG.NULL && params.contentLength === 0) wrapEncoding = 'null';
    }
  }

  const recipients: KariRecipient[] = readChildren(der, encryptedKeys).map((rek) => {
    const [rid, key, extra] = readChildren(der, rek, 3);
    if (rid === undefined || key?.tag !== TAG.OCTET_STRING || extra !== undefined) {
      malformed('bad RecipientEncryptedKey');
    }
    if (rid.tag !== TAG.SEQUENCE && rid.tag !== TAG.context(0))
      malformed('bad KeyAgreeRecipientIdentifier');
    return {
      ridOffset: rid.offset,
      rid: tlvBytes(der, rid),
      isIssuerAndSerial: rid.tag === TAG.SEQUENCE,
      encryptedKey: der.subarray(key.contentOffset, key.end),
    };
  });

  return {
    index,
    tlv,
    originatorPoint,
    originatorOnP256,
    ukm,
    keyAgreementOid: der.subarray(kaOid.contentOffset, kaOid.end),
    wrapAlgorithm,
    wrapOid,
    wrapEncoding,
    recipients,
  };
}

/** Lowercase hex, the key form of DeviceRecryptKeys.keys. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
