/**
 * Decrypts a CMS (Auth)EnvelopedData with a device or group secret: for tests, the
 * CLI's `read`, and a future device-side bridge. Reads the KeyAgreeRecipientInfos that
 * name the given recipient (either wrap encoding; the first one naming it decides), stdDH X9.63 KDFs, AES key wrap, and
 * AES-CBC or AES-GCM content; BER with indefinite lengths (streaming encoders) is read
 * around the content, since a decrypter, unlike the transform, must read all of it.
 */
import { createDecipheriv, createECDH, createHash } from 'node:crypto';
import { RecryptError } from './errors.js';
import { TAG, berChildren, berEnd, bytesEqual, oidContent, readTlv, type Tlv } from './der.js';
import { KEY_WRAP_IV, eccCmsSharedInfo } from './envelope.js';
import { scalarToBytes, validatePoint } from './scalar.js';
import { locateSmimeBody } from './transform-message.js';
import { parseEnvelopePrefix, type EnvelopePrefix, type KariInfo } from './transform-prefix.js';
import type { RecipientId, Scalar } from './types.js';

export interface DecryptKey {
  secret: Scalar;
  recipientId: RecipientId;
}

const KDF_HASH = new Map<string, string>([
  [hex(oidContent('1.3.133.16.840.63.0.2')), 'sha1'],
  [hex(oidContent('1.3.132.1.11.0')), 'sha224'],
  [hex(oidContent('1.3.132.1.11.1')), 'sha256'],
  [hex(oidContent('1.3.132.1.11.2')), 'sha384'],
  [hex(oidContent('1.3.132.1.11.3')), 'sha512'],
]);
const WRAP = new Map<string, { cipher: string; bits: number }>([
  [hex(oidContent('2.16.840.1.101.3.4.1.5')), { cipher: 'id-aes128-wrap', bits: 128 }],
  [hex(oidContent('2.16.840.1.101.3.4.1.25')), { cipher: 'id-aes192-wrap', bits: 192 }],
  [hex(oidContent('2.16.840.1.101.3.4.1.45')), { cipher: 'id-aes256-wrap', bits: 256 }],
]);
const CONTENT = new Map<string, { cipher: string; mode: 'cbc' | 'gcm' }>([
  [hex(oidContent('2.16.840.1.101.3.4.1.2')), { cipher: 'aes-128-cbc', mode: 'cbc' }],
  [hex(oidContent('2.16.840.1.101.3.4.1.22')), { cipher: 'aes-192-cbc', mode: 'cbc' }],
  [hex(oidContent('2.16.840.1.101.3.4.1.42')), { cipher: 'aes-256-cbc', mode: 'cbc' }],
  [hex(oidContent('2.16.840.1.101.3.4.1.6')), { cipher: 'aes-128-gcm', mode: 'gcm' }],
  [hex(oidContent('2.16.840.1.101.3.4.1.26')), { cipher: 'aes-192-gcm', mode: 'gcm' }],
  [hex(oidContent('2.16.840.1.101.3.4.1.46')), { cipher: 'aes-256-gcm', mode: 'gcm' }],
]);

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fail(code: 'decrypt-failed' | 'malformed-der' | 'unsupported', message: string): never {
  throw new RecryptError(code, message);
}

/** X9.63 KDF: Hash(Z ‖ counter ‖ SharedInfo) for counter = 1, 2, … until `bytes` are out. */
function x963Kdf(hash: string, z: Uint8Array, sharedInfo: Uint8Array, bytes: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 1, have = 0; have < bytes; counter++) {
    const block = createHash(hash)
      .update(z)
      .update(
        Uint8Array.of(
          counter >>> 24,
          (counter >>> 16) & 0xff,
          (counter >>> 8) & 0xff,
          counter & 0xff,
        ),
      )
      .update(sharedInfo)
      .digest();
    blocks.push(block);
    have += block.length;
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}

/** The content key from one KeyAgreeRecipientInfo, or null if this one does not open. */
function unwrapKey(kari: KariInfo, encryptedKey: Uint8Array, secret: Scalar): Buffer | null {
  const hash = KDF_HASH.get(hex(kari.keyAgreementOid));
  const wrap = kari.wrapOid === null ? undefined : WRAP.get(hex(kari.wrapOid));
  if (hash === undefined || wrap === undefined || kari.wrapAlgorithm === null) return null;
  const point = kari.originatorPoint?.bytes;
  if (point === undefined || !kari.originatorOnP256 || !validatePoint(point)) return null;
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalarToBytes(secret));
  const z = ecdh.computeSecret(point);
  const kek = x963Kdf(
    hash,
    z,
    eccCmsSharedInfo(kari.wrapAlgorithm, kari.ukm, wrap.bits),
    wrap.bits / 8,
  );
  try {
    const decipher = createDecipheriv(wrap.cipher, kek, KEY_WRAP_IV);
    return Buffer.concat([decipher.update(encryptedKey), decipher.final()]);
  } catch {
    return null;
  }
}

/** The bytes of a possibly constructed (chunked) OCTET STRING / [0] IMPLICIT one. */
function octets(der: Uint8Array, tlv: Tlv, depth = 0): Uint8Array {
  if (!tlv.constructed) return der.subarray(tlv.contentOffset, tlv.end);
  if (depth > 8) fail('malformed-der', 'constructed string nested too deep');
  return Buffer.concat(berChildren(der, tlv).map((child) => octets(der, child, depth + 1)));
}

/**
 * The content key from the first RecipientEncryptedKey naming the recipient. Like
 * OpenSSL (cms_kari_set1_pkey_and_peer), a failure there is final: trying further
 * recipient infos would turn the decrypter into an oracle for which ones open.
 */
function contentKeyFor(prefix: EnvelopePrefix, key: DecryptKey): Buffer {
  for (const kari of prefix.karis) {
    for (const recipient of kari.recipients) {
      if (!bytesEqual(recipient.rid, key.recipientId)) continue;
      const contentKey = unwrapKey(kari, recipient.encryptedKey, key.secret);
      if (contentKey === null)
        fail('decrypt-failed', 'the recipient info for this recipient does not open with this key');
      return contentKey;
    }
  }
  return fail('decrypt-failed', 'no recipient info names this recipient');
}

/** Decrypts a DER/BER ContentInfo holding (Auth)EnvelopedData; returns the content. */
export function decryptEnvelope(der: Uint8Array, key: DecryptKey): Uint8Array {
  if (!(der instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'der must be a Uint8Array');
  if (!(key?.recipientId instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', 'key.recipientId must be a Uint8Array');
  }
  scalarToBytes(key.secret); // checks the scalar
  // The transform may ignore what lies past recipientInfos; a decrypter reads it all.
  const outer = readTlv(der, 0, { allowIndefinite: true });
  if (outer.end !== Infinity && outer.end > der.length)
    fail('malformed-der', 'ContentInfo runs past the input');
  const prefix = parseEnvelopePrefix(der, der.length);
  const contentKey = contentKeyFor(prefix, key);

  const envelopeFields = berChildren(der, prefix.envelope);
  const at = envelopeFields.findIndex((f) => f.offset === prefix.recipientInfos.offset);
  const info = envelopeFields[at + 1];
  if (info?.tag !== TAG.SEQUENCE) fail('malformed-der', 'no EncryptedContentInfo');
  const [, algorithm, encrypted] = berChildren(der, info);
  if (algorithm?.tag !== TAG.SEQUENCE) fail('malformed-der', 'no contentEncryptionAlgorithm');
  if (encrypted === undefined || (encrypted.tag & 0xdf) !== 0x80)
    fail('unsupported', 'no encryptedContent');
  const [algOid, params] = berChildren(der, algorithm);
  const cipher =
    algOid?.tag === TAG.OID
      ? CONTENT.get(hex(der.subarray(algOid.contentOffset, algOid.end)))
      : undefined;
  if (cipher === undefined || params === undefined)
    fail('unsupported', 'content encryption algorithm');
  if (contentKey.length * 8 !== Number(cipher.cipher.split('-')[1]))
    fail('decrypt-failed', 'content key length');
  const ciphertext = octets(der, encrypted);

  try {
    if (cipher.mode === 'cbc') {
      if (params.tag !== TAG.OCTET_STRING) fail('malformed-der', 'CBC parameters');
      const decipher = createDecipheriv(
        cipher.cipher,
        contentKey,
        der.subarray(params.contentOffset, params.end),
      );
      return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
    }
    if (prefix.kind !== 'authEnveloped') fail('unsupported', 'GCM outside AuthEnvelopedData');
    const [nonce, icv] = berChildren(der, params);
    if (nonce?.tag !== TAG.OCTET_STRING) fail('malformed-der', 'GCM parameters');
    const tagLength = icv === undefined ? 12 : der[icv.contentOffset]!;
    let rest = at + 2;
    let aad: Uint8Array | null = null;
    if (envelopeFields[rest]?.tag === TAG.context(1)) {
      const attrs = envelopeFields[rest++]!;
      aad = new Uint8Array(der.subarray(attrs.offset, berEnd(der, attrs)));
      aad[0] = TAG.SET; // authAttrs are authenticated with their SET OF tag (RFC 5083 §2.2)
    }
    const mac = envelopeFields[rest];
    if (mac?.tag !== TAG.OCTET_STRING || mac.contentLength !== tagLength)
      fail('malformed-der', 'mac');
    const decipher = createDecipheriv(
      cipher.cipher as 'aes-256-gcm',
      contentKey,
      der.subarray(nonce.contentOffset, nonce.end),
      {
        authTagLength: tagLength,
      },
    );
    if (aad !== null) decipher.setAAD(aad);
    decipher.setAuthTag(der.subarray(mac.contentOffset, mac.end));
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
  } catch (error) {
    if (error instanceof RecryptError) throw error;
    return fail('decrypt-failed', 'content does not decrypt with the recovered key');
  }
}

/** Decrypts an S/MIME message (application/pkcs7-mime, base64 or binary); returns the content. */
export function decryptMessage(message: Uint8Array, key: DecryptKey): Uint8Array {
  if (!(message instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'message must be a Uint8Array');
  const body = locateSmimeBody(message);
  if (body.kind !== 'body')
    fail(
      'unsupported',
      `not an S/MIME enveloped message (${body.kind === 'unchanged' ? body.reason : 'truncated'})`,
    );
  if (body.encoding === 'binary') return decryptEnvelope(message.subarray(body.bodyStart), key);
  // Node's decoder skips line breaks; a decrypter need not map offsets as the transform does.
  const text = Buffer.from(
    message.buffer,
    message.byteOffset + body.bodyStart,
    message.length - body.bodyStart,
  );
  return decryptEnvelope(new Uint8Array(Buffer.from(text.toString('latin1'), 'base64')), key);
}
