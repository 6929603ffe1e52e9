/**
 * CMS EnvelopedData (AES-256-CBC) or AuthEnvelopedData (AES-256-GCM) to a group
 * certificate, in the form docs/design.md §2 prescribes: two KeyAgreeRecipientInfos for the
 * group (key-wrap parameters absent, and NULL), each with its own ephemeral P-256 key,
 * both wrapping the same content key; dhSinglePass-stdDH-sha256kdf-scheme, AES-256 key
 * wrap, rid = the group certificate's IssuerAndSerialNumber. Both recipient infos are
 * found again by that rid (see transform-prefix.ts).
 *
 * ECDH, AES and SHA-256 come from node:crypto (OpenSSL) for speed; the certificate's
 * point is validated with scalar.validatePoint before it is used.
 */
import { createCipheriv, createECDH, createHash, randomBytes, type CipherGCM } from 'node:crypto';
import { RecryptError } from './errors.js';
import {
  TAG,
  bytesEqual,
  encodeOid,
  encodeTlv,
  encodeTreeAround,
  expectTlv,
  oidContent,
  readChildren,
  tlvBytes,
  type DerNode,
} from './der.js';
import { keyTransRecipientInfo, type KeyTransportRecipient } from './key-transport.js';
import { validatePoint } from './scalar.js';
import { OID } from './transform-prefix.js';
import type { RecipientId, WrapEncoding } from './types.js';

export type ContentEncryption = 'aes-256-cbc' | 'aes-256-gcm';

export interface EnvelopeOptions {
  contentEncryption?: ContentEncryption;
  /** Which recipient infos to write, in order (default both: ['absent', 'null']). */
  wrapEncodings?: readonly WrapEncoding[];
  /**
   * RSA recipients besides the group certificates (submission, docs/sending.md): one
   * KeyTransRecipientInfo each (key-transport.ts), wrapping the same content key.
   */
  keyTransport?: readonly KeyTransportRecipient[];
}

/** What an envelope needs from a recipient certificate. */
export interface RecipientCertificate {
  recipientId: RecipientId;
  /** The certificate's P-256 public key, 65 bytes uncompressed, validated. */
  publicPoint: Uint8Array;
}

const NULL = Uint8Array.of(0x05, 0x00);
const ID_EC_PUBLIC_KEY = oidContent(OID.ecPublicKey);
const PRIME256V1 = oidContent(OID.prime256v1);

/** DER from DER or PEM input ("-----BEGIN CERTIFICATE-----"). */
export function certificateDer(certificate: Uint8Array): Uint8Array {
  if (!(certificate instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', 'certificate must be a Uint8Array');
  }
  const head = Buffer.from(certificate.subarray(0, 64)).toString('latin1');
  if (!head.includes('-----BEGIN')) return certificate;
  const text = Buffer.from(certificate).toString('latin1');
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(
    text,
  );
  if (match === null) throw new RecryptError('malformed-der', 'no PEM certificate found');
  return new Uint8Array(Buffer.from(match[1]!, 'base64'));
}

/**
 * Reads the IssuerAndSerialNumber and P-256 public key of an X.509 certificate
 * (DER or PEM). Throws 'malformed-der', 'unsupported' (not P-256) or 'invalid-point'.
 */
export function readRecipientCertificate(certificate: Uint8Array): RecipientCertificate {
  const der = certificateDer(certificate);
  const cert = expectTlv(der, 0, TAG.SEQUENCE, der.length, 'Certificate');
  const tbs = readChildren(der, cert, 3)[0];
  if (tbs?.tag !== TAG.SEQUENCE) throw new RecryptError('malformed-der', 'no tbsCertificate');
  const fields = readChildren(der, tbs, 16);
  let i = fields[0]?.tag === TAG.context(0) ? 1 : 0;
  const serial = fields[i++];
  i++; // signature algorithm
  const issuer = fields[i++];
  i += 2; // validity, subject
  const spki = fields[i];
  if (serial?.tag !== TAG.INTEGER || issuer?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE) {
    throw new RecryptError('malformed-der', 'certificate fields out of order');
  }
  const [alg, key] = readChildren(der, spki, 2);
  if (alg?.tag !== TAG.SEQUENCE || key?.tag !== TAG.BIT_STRING) {
    throw new RecryptError('malformed-der', 'bad SubjectPublicKeyInfo');
  }
  const [algOid, curve] = readChildren(der, alg, 2);
  const isP256 =
    algOid?.tag === TAG.OID &&
    curve?.tag === TAG.OID &&
    bytesEqual(der.subarray(algOid.contentOffset, algOid.end), ID_EC_PUBLIC_KEY) &&
    bytesEqual(der.subarray(curve.contentOffset, curve.end), PRIME256V1);
  if (!isP256) throw new RecryptError('unsupported', 'certificate key is not EC P-256');
  const point = der.subarray(key.contentOffset + 1, key.end);
  if (der[key.contentOffset] !== 0 || !validatePoint(point)) {
    throw new RecryptError('invalid-point', 'certificate public key is not a valid P-256 point');
  }
  const recipientId = encodeTlv(TAG.SEQUENCE, tlvBytes(der, issuer), tlvBytes(der, serial));
  return { recipientId, publicPoint: new Uint8Array(point) };
}

/** The key-wrap AlgorithmIdentifier as it goes into a recipient info and into SharedInfo. */
export function wrapAlgorithmIdentifier(encoding: WrapEncoding): Uint8Array {
  const oid = encodeOid(OID.aes256Wrap);
  return encoding === 'null' ? encodeTlv(TAG.SEQUENCE, oid, NULL) : encodeTlv(TAG.SEQUENCE, oid);
}

/**
 * RFC 5753 §7.2 ECC-CMS-SharedInfo: keyInfo = the wrap AlgorithmIdentifier exactly as
 * encoded in the recipient info, entityUInfo only with a ukm, suppPubInfo = key bits.
 */
export function eccCmsSharedInfo(
  wrapAlgorithm: Uint8Array,
  ukm: Uint8Array | null,
  keyBits = 256,
): Uint8Array {
  const bits = Uint8Array.of(
    keyBits >>> 24,
    (keyBits >>> 16) & 0xff,
    (keyBits >>> 8) & 0xff,
    keyBits & 0xff,
  );
  const parts = [wrapAlgorithm];
  if (ukm !== null) parts.push(encodeTlv(TAG.context(0), encodeTlv(TAG.OCTET_STRING, ukm)));
  parts.push(encodeTlv(TAG.context(2), encodeTlv(TAG.OCTET_STRING, bits)));
  return encodeTlv(TAG.SEQUENCE, ...parts);
}

/** ANSI X9.63 KDF with SHA-256, for a 32-byte key (one hash block: counter 1). */
export function x963KdfSha256(sharedX: Uint8Array, sharedInfo: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash('sha256')
      .update(sharedX)
      .update(Uint8Array.of(0, 0, 0, 1))
      .update(sharedInfo)
      .digest(),
  );
}

/** RFC 3394 default IV: node's 'id-aes256-wrap' wants it explicitly. */
export const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

function keyAgreeRecipientInfo(
  recipient: RecipientCertificate,
  contentKey: Uint8Array,
  encoding: WrapEncoding,
): DerNode {
  const ephemeral = createECDH('prime256v1');
  const ephemeralPoint = ephemeral.generateKeys();
  const sharedX = ephemeral.computeSecret(recipient.publicPoint);
  const wrapAlgorithm = wrapAlgorithmIdentifier(encoding);
  const kek = x963KdfSha256(sharedX, eccCmsSharedInfo(wrapAlgorithm, null));
  const wrap = createCipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
  const encryptedKey = Buffer.concat([wrap.update(contentKey), wrap.final()]);
  const originatorKey = encodeTlv(
    TAG.context(1),
    encodeTlv(TAG.SEQUENCE, encodeOid(OID.ecPublicKey)),
    encodeTlv(TAG.BIT_STRING, Uint8Array.of(0), ephemeralPoint),
  );
  return encodeTlv(
    TAG.context(1),
    encodeTlv(TAG.INTEGER, Uint8Array.of(3)),
    encodeTlv(TAG.context(0), originatorKey),
    encodeTlv(TAG.SEQUENCE, encodeOid(OID.stdDhSha256Kdf), wrapAlgorithm),
    encodeTlv(
      TAG.SEQUENCE,
      encodeTlv(TAG.SEQUENCE, recipient.recipientId, encodeTlv(TAG.OCTET_STRING, encryptedKey)),
    ),
  );
}

/** An envelope whose DER length is known before any content is encrypted. */
export interface EnvelopeWriter {
  readonly length: number;
  /**
   * Emits the DER in order — the head, the encrypted content in chunks as it is
   * encrypted, the tail — so a caller can encode it straight into its output without a
   * full-size intermediate copy (a 50 MB message stays one 50 MB input and one output).
   * Call once (this or `chunks`).
   */
  write(sink: (chunk: Uint8Array) => void): void;
  /**
   * The same DER pulled piece by piece: each step encrypts at most `encryptChunk` bytes
   * of content, so a caller that sends as it pulls never holds the whole ciphertext and
   * can let other work run between pieces. Call once (this or `write`).
   */
  chunks(encryptChunk?: number): Generator<Uint8Array, void, undefined>;
}

const ENCRYPT_CHUNK = 64 * 1024;

/**
 * CMS EnvelopedData (AES-256-CBC, default) or AuthEnvelopedData (AES-256-GCM) of
 * `content` for the group certificate, one KeyAgreeRecipientInfo per wrap encoding, all
 * wrapping the same fresh content key (docs/design.md §2). Given several certificates
 * (submission: every recipient's group and the sender's, docs/sending.md), the content
 * is encrypted once and each certificate gets its recipient infos, in the order given.
 */
export function prepareEnvelope(
  content: Uint8Array,
  groupCertificate: Uint8Array | readonly Uint8Array[],
  options: EnvelopeOptions = {},
): EnvelopeWriter {
  if (!(content instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'content must be a Uint8Array');
  const mode = options.contentEncryption ?? 'aes-256-cbc';
  if (mode !== 'aes-256-cbc' && mode !== 'aes-256-gcm') {
    throw new RecryptError('invalid-argument', `unknown content encryption ${String(mode)}`);
  }
  const encodings = options.wrapEncodings ?? ['absent', 'null'];
  if (encodings.length === 0 || encodings.some((e) => e !== 'absent' && e !== 'null')) {
    throw new RecryptError('invalid-argument', "wrapEncodings must list 'absent' and/or 'null'");
  }
  const certificates =
    groupCertificate instanceof Uint8Array ? [groupCertificate] : groupCertificate;
  if (certificates.length === 0)
    throw new RecryptError('invalid-argument', 'at least one recipient certificate is needed');
  const recipients = certificates.map((certificate) => readRecipientCertificate(certificate));
  const contentKey = randomBytes(32);
  const recipientInfos: DerNode = {
    tag: TAG.SET,
    children: [
      ...recipients.flatMap((recipient) =>
        encodings.map((encoding) => keyAgreeRecipientInfo(recipient, contentKey, encoding)),
      ),
      ...(options.keyTransport ?? []).map((recipient) =>
        keyTransRecipientInfo(recipient, contentKey),
      ),
    ],
  };
  const dataOid = encodeOid(OID.data);
  const gcm = mode === 'aes-256-gcm';
  const iv = randomBytes(gcm ? 12 : 16);
  // CBC pads to the next whole block (PKCS#7 always adds 1..16 bytes); GCM adds nothing.
  const encryptedLength = gcm ? content.length : (Math.floor(content.length / 16) + 1) * 16;
  const encryptedContent: DerNode = {
    tag: TAG.contextPrimitive(0),
    children: [{ hole: encryptedLength }],
  };
  const algorithm = gcm
    ? encodeTlv(
        TAG.SEQUENCE,
        encodeOid(OID.aes256Gcm),
        encodeTlv(
          TAG.SEQUENCE,
          encodeTlv(TAG.OCTET_STRING, iv),
          encodeTlv(TAG.INTEGER, Uint8Array.of(16)),
        ),
      )
    : encodeTlv(TAG.SEQUENCE, encodeOid(OID.aes256Cbc), encodeTlv(TAG.OCTET_STRING, iv));
  const body: DerNode[] = [
    // EnvelopedData version 2: KeyAgreeRecipientInfo present; AuthEnvelopedData version 0.
    encodeTlv(TAG.INTEGER, Uint8Array.of(gcm ? 0 : 2)),
    recipientInfos,
    { tag: TAG.SEQUENCE, children: [dataOid, algorithm, encryptedContent] },
    // AuthEnvelopedData's mac, last in the structure: filled in once the tag is known.
    ...(gcm ? [encodeTlv(TAG.OCTET_STRING, new Uint8Array(16))] : []),
  ];
  const { head, holeLength, tail } = encodeTreeAround({
    tag: TAG.SEQUENCE,
    children: [
      encodeOid(gcm ? OID.authEnvelopedData : OID.envelopedData),
      { tag: TAG.context(0), children: [{ tag: TAG.SEQUENCE, children: body }] },
    ],
  });
  let started = false;
  function* chunks(encryptChunk = ENCRYPT_CHUNK): Generator<Uint8Array, void, undefined> {
    if (started) throw new RecryptError('invalid-argument', 'an envelope is written once');
    started = true;
    const cipher = gcm
      ? createCipheriv('aes-256-gcm', contentKey, iv, { authTagLength: 16 })
      : createCipheriv('aes-256-cbc', contentKey, iv);
    yield head;
    for (let at = 0; at < content.length; at += encryptChunk) {
      const chunk = cipher.update(content.subarray(at, at + encryptChunk));
      if (chunk.length > 0) yield chunk;
    }
    const last = cipher.final();
    if (last.length > 0) yield last;
    if (gcm) tail.set((cipher as CipherGCM).getAuthTag(), tail.length - 16);
    yield tail;
  }
  return {
    length: head.length + holeLength + tail.length,
    write(sink) {
      for (const chunk of chunks()) sink(chunk);
    },
    chunks,
  };
}

/** The whole envelope as one DER buffer (see prepareEnvelope). */
export function envelopeForGroup(
  content: Uint8Array,
  groupCertificate: Uint8Array | readonly Uint8Array[],
  options: EnvelopeOptions = {},
): Uint8Array {
  const writer = prepareEnvelope(content, groupCertificate, options);
  const out = new Uint8Array(writer.length);
  let at = 0;
  writer.write((chunk) => {
    out.set(chunk, at);
    at += chunk.length;
  });
  return out;
}
