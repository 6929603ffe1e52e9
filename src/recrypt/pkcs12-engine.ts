/**
 * What the PKCS#12 writer (pkcs12.ts) and reader (pkcs12-read.ts) share: the object
 * identifiers, the iteration count and salt length, and the pkijs engine whose PBES2
 * encryption uses a short salt (pkijs' own 64-byte salt is refused by gpgsm).
 */
import { createCipheriv, pbkdf2Sync, randomBytes, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/**
 * PBKDF2 and MAC iterations. Both guard the same password (the MAC can be brute-forced
 * as well as the key), so both get the same count: well above OpenSSL's 2048 default,
 * low enough that importing on a phone stays under a second or so.
 */
export const PKCS12_ITERATIONS = 100_000;

export const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
export const OID_LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
export const OID_X509_CERT_BAG = '1.2.840.113549.1.9.22.1';
export const OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
export const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';

/**
 * PBKDF2 and MAC salt length. gpgsm (KMail, Kleopatra) refuses salts over 32 bytes ("bad
 * length of salt", docs/design.md §3); pkijs always writes 64, so this file derives
 * and encrypts itself. 16 bytes is what OpenSSL 3 writes and what NIST SP 800-132 asks for.
 */
export const PKCS12_SALT_BYTES = 16;

export const OID_PBES2 = '1.2.840.113549.1.5.13';
export const OID_PBKDF2 = '1.2.840.113549.1.5.12';
export const OID_HMAC_SHA256 = '1.2.840.113549.2.9';
export const OID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
export const OID_SHA256 = '2.16.840.1.101.3.4.2.1';

type Crypto = ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'];
type EncryptParameters = Parameters<pkijs.CryptoEngine['encryptEncryptedContentInfo']>[0];

/**
 * pkijs' engine with PBES2 encryption replaced: PBKDF2-HMAC-SHA256 with a 16-byte salt and
 * AES-256-CBC, through node:crypto. Everything else (reading, the MAC KDF) is pkijs'.
 */
class ShortSaltEngine extends pkijs.CryptoEngine {
  override encryptEncryptedContentInfo(
    parameters: EncryptParameters,
  ): Promise<pkijs.EncryptedContentInfo> {
    const salt = randomBytes(PKCS12_SALT_BYTES);
    const iv = randomBytes(16);
    const key = pbkdf2Sync(
      Buffer.from(parameters.password as ArrayBuffer),
      salt,
      parameters.iterationCount,
      32,
      'sha256',
    );
    const cipher = createCipheriv('aes-256-cbc', key, iv);
    const encrypted = Buffer.concat([
      cipher.update(Buffer.from(parameters.contentToEncrypt as ArrayBuffer)),
      cipher.final(),
    ]);
    const pbkdf2 = new pkijs.PBKDF2Params({
      salt: new asn1js.OctetString({ valueHex: salt }),
      iterationCount: parameters.iterationCount,
      prf: new pkijs.AlgorithmIdentifier({
        algorithmId: OID_HMAC_SHA256,
        algorithmParams: new asn1js.Null(),
      }),
    });
    const pbes2 = new pkijs.PBES2Params({
      keyDerivationFunc: new pkijs.AlgorithmIdentifier({
        algorithmId: OID_PBKDF2,
        algorithmParams: pbkdf2.toSchema(),
      }),
      encryptionScheme: new pkijs.AlgorithmIdentifier({
        algorithmId: OID_AES256_CBC,
        algorithmParams: new asn1js.OctetString({ valueHex: iv }),
      }),
    });
    return Promise.resolve(
      new pkijs.EncryptedContentInfo({
        contentType: parameters.contentType,
        contentEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({
          algorithmId: OID_PBES2,
          algorithmParams: pbes2.toSchema(),
        }),
        encryptedContent: new asn1js.OctetString({ valueHex: encrypted }),
      }),
    );
  }
}

export const engine = new ShortSaltEngine({
  name: 'node-webcrypto',
  crypto: webcrypto as unknown as Crypto,
});

export function utf8(text: string): ArrayBuffer {
  const bytes = new TextEncoder().encode(text);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
