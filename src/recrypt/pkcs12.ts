/**
 * PKCS#12 (RFC 7292) for a device: its private key d, its device certificate and the
 * owner CA, protected by a password, in the layout OpenSSL 3 writes by default so that
 * every mail client imports it:
 *
 *   AuthenticatedSafe
 *     EncryptedData (PBES2: PBKDF2-HMAC-SHA256, 16-byte salt, AES-256-CBC)
 *       CertBag device certificate   friendlyName, localKeyId
 *       CertBag owner CA certificate friendlyName
 *     Data
 *       PKCS8ShroudedKeyBag (PBES2 as above)  friendlyName, localKeyId
 *   MacData HMAC-SHA256 (PKCS#12 KDF, 16-byte salt)
 *
 * localKeyId (SHA-1 of the device certificate, as OpenSSL computes it) pairs key and
 * certificate; friendlyName is what NSS and Windows show as the nickname.
 *
 * The reader decrypts the key through node:crypto (OpenSSL parses the encrypted PKCS#8),
 * so what we write is checked by an independent implementation on every read.
 */
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  pbkdf2Sync,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { certificatePublicPoint, subjectCommonName } from './certificates.js';
import { RecryptError } from './errors.js';
import { checkScalar, privateKeyObject, publicPoint, scalarFromBytes } from './scalar.js';
import type { Scalar } from './types.js';

/**
 * PBKDF2 and MAC iterations. Both guard the same password (the MAC can be brute-forced
 * as well as the key), so both get the same count: well above OpenSSL's 2048 default,
 * low enough that importing on a phone stays under a second or so.
 */
export const PKCS12_ITERATIONS = 100_000;

/** The most iterations a file we read may ask for: a crafted count must not hang `read`. */
export const MAX_READ_ITERATIONS = 10_000_000;

const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const OID_LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
const OID_X509_CERT_BAG = '1.2.840.113549.1.9.22.1';
const OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';

/**
 * PBKDF2 and MAC salt length. gpgsm (KMail, Kleopatra) refuses salts over 32 bytes ("bad
 * length of salt", docs/design.md §3); pkijs always writes 64, so this file derives
 * and encrypts itself. 16 bytes is what OpenSSL 3 writes and what NIST SP 800-132 asks for.
 */
export const PKCS12_SALT_BYTES = 16;

const OID_PBES2 = '1.2.840.113549.1.5.13';
const OID_PBKDF2 = '1.2.840.113549.1.5.12';
const OID_HMAC_SHA256 = '1.2.840.113549.2.9';
const OID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';

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

const engine = new ShortSaltEngine({
  name: 'node-webcrypto',
  crypto: webcrypto as unknown as Crypto,
});

const PBES2_AES256 = {
  contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 },
  hmacHashAlgorithm: 'SHA-256',
  iterationCount: PKCS12_ITERATIONS,
};

export interface DevicePkcs12Input {
  deviceSecret: Scalar;
  /** DER of the device certificate (its key must be d·P). */
  certificate: Uint8Array;
  /** DER of the owner CA certificate(s). */
  caCertificates: Uint8Array[];
  password: string;
  /** The nickname clients show; default the device certificate's subject CN. */
  friendlyName?: string;
}

export interface DevicePkcs12 {
  deviceSecret: Scalar;
  certificate: Uint8Array;
  caCertificates: Uint8Array[];
}

function utf8(text: string): ArrayBuffer {
  const bytes = new TextEncoder().encode(text);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

function attributes(friendlyName: string, localKeyId?: Uint8Array): pkijs.Attribute[] {
  const list = [
    new pkijs.Attribute({
      type: OID_FRIENDLY_NAME,
      values: [new asn1js.BmpString({ value: friendlyName })],
    }),
  ];
  if (localKeyId !== undefined) {
    list.push(
      new pkijs.Attribute({
        type: OID_LOCAL_KEY_ID,
        values: [new asn1js.OctetString({ valueHex: localKeyId })],
      }),
    );
  }
  return list;
}

function certBag(der: Uint8Array, friendlyName: string, localKeyId?: Uint8Array): pkijs.SafeBag {
  // certValue is given as raw bytes so the certificate is stored exactly as issued.
  return new pkijs.SafeBag({
    bagId: OID_CERT_BAG,
    bagValue: new pkijs.CertBag({
      certId: OID_X509_CERT_BAG,
      certValue: new asn1js.OctetString({ valueHex: der }),
    }),
    bagAttributes: attributes(friendlyName, localKeyId),
  });
}

/** PKCS#8 DER of the P-256 key d (through node:crypto: ECPrivateKey with its public key). */
function pkcs8Of(deviceSecret: Scalar): Uint8Array {
  return new Uint8Array(privateKeyObject(deviceSecret).export({ format: 'der', type: 'pkcs8' }));
}

function assertInput(input: DevicePkcs12Input): void {
  checkScalar(input.deviceSecret, 'deviceSecret');
  if (!(input.certificate instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', 'certificate must be a Uint8Array (DER)');
  }
  if (
    !Array.isArray(input.caCertificates) ||
    !input.caCertificates.every((c) => c instanceof Uint8Array)
  ) {
    throw new RecryptError(
      'invalid-argument',
      'caCertificates must be an array of DER certificates',
    );
  }
  if (typeof input.password !== 'string' || input.password.length === 0) {
    throw new RecryptError('invalid-argument', 'password must be a non-empty string');
  }
  if (
    input.friendlyName !== undefined &&
    (typeof input.friendlyName !== 'string' || input.friendlyName.length === 0)
  ) {
    throw new RecryptError('invalid-argument', 'friendlyName must be a non-empty string');
  }
  const certPoint = certificatePublicPoint(input.certificate);
  if (!Buffer.from(certPoint).equals(Buffer.from(publicPoint(input.deviceSecret)))) {
    throw new RecryptError('invalid-argument', 'certificate does not hold the key of deviceSecret');
  }
}

/** The password-protected PKCS#12 (DER) a person imports into their mail client. */
export async function buildDevicePkcs12(input: DevicePkcs12Input): Promise<Uint8Array> {
  assertInput(input);
  const password = utf8(input.password);
  const localKeyId = new Uint8Array(createHash('sha1').update(input.certificate).digest());
  const friendlyName = input.friendlyName ?? subjectCommonName(input.certificate) ?? 'device';

  const keyBag = new pkijs.PKCS8ShroudedKeyBag({
    parsedValue: pkijs.PrivateKeyInfo.fromBER(pkcs8Of(input.deviceSecret)),
  });
  await keyBag.makeInternalValues({ password, ...PBES2_AES256 }, engine);

  const certificates = new pkijs.SafeContents({
    safeBags: [
      certBag(input.certificate, friendlyName, localKeyId),
      // A CA is named by its own CN (the owner's key fingerprint): the same nickname from
      // every device's file, so a client that imports two of them keeps one CA entry.
      ...input.caCertificates.map((der) => certBag(der, subjectCommonName(der) ?? 'owner CA')),
    ],
  });
  const keys = new pkijs.SafeContents({
    safeBags: [
      new pkijs.SafeBag({
        bagId: OID_SHROUDED_KEY_BAG,
        bagValue: keyBag,
        bagAttributes: attributes(friendlyName, localKeyId),
      }),
    ],
  });

  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0,
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 1, value: certificates },
            { privacyMode: 0, value: keys },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues(
    { safeContents: [{ password, ...PBES2_AES256 }, {}] },
    engine,
  );
  await pfx.makeInternalValues(
    {
      password,
      iterations: PKCS12_ITERATIONS,
      pbkdf2HashAlgorithm: 'SHA-256',
      hmacHashAlgorithm: 'SHA-256',
    },
    engine,
  );
  await shortenMacSalt(pfx, password);
  return new Uint8Array(pfx.toSchema().toBER(false));
}

/** pkijs' MAC salt is 64 bytes too: the MAC is stamped again over the same data with a short one. */
async function shortenMacSalt(pfx: pkijs.PFX, password: ArrayBuffer): Promise<void> {
  const content = pfx.authSafe.content as asn1js.OctetString;
  const salt = randomBytes(PKCS12_SALT_BYTES);
  const mac = await engine.stampDataWithPassword({
    password,
    hashAlgorithm: 'SHA-256',
    salt: salt.buffer.slice(salt.byteOffset, salt.byteOffset + salt.byteLength),
    iterationCount: PKCS12_ITERATIONS,
    contentToStamp: content.getValue(),
  });
  pfx.macData = new pkijs.MacData({
    mac: new pkijs.DigestInfo({
      digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID_SHA256 }),
      digest: new asn1js.OctetString({ valueHex: mac }),
    }),
    macSalt: new asn1js.OctetString({ valueHex: salt }),
    iterations: PKCS12_ITERATIONS,
  });
}

function malformed(what: string): RecryptError {
  return new RecryptError('malformed-der', `der is not a readable PKCS#12: ${what}`);
}

/**
 * Reads a device PKCS#12 (ours, or one OpenSSL 3 wrote with its PBES2 defaults).
 * A wrong password gives RecryptError 'bad-password'; legacy RC2/3DES files 'unsupported'.
 */
export async function readPkcs12(der: Uint8Array, password: string): Promise<DevicePkcs12> {
  if (!(der instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'der must be a Uint8Array');
  if (typeof password !== 'string')
    throw new RecryptError('invalid-argument', 'password must be a string');
  let pfx: pkijs.PFX;
  try {
    pfx = pkijs.PFX.fromBER(der);
  } catch {
    throw malformed('not a PFX structure');
  }
  const passwordBytes = utf8(password);
  assertIterations(pfx.macData?.iterations ?? 1);
  try {
    await pfx.parseInternalValues({ password: passwordBytes, checkIntegrity: true }, engine);
  } catch (error) {
    if (error instanceof Error && /Integrity/i.test(error.message)) {
      throw new RecryptError('bad-password', 'the PKCS#12 password is wrong (MAC check failed)');
    }
    throw malformed('no password MAC');
  }
  const safe = pfx.parsedValue?.authenticatedSafe;
  if (safe === undefined) throw malformed('no authenticated safe');
  for (const content of safe.safeContents) {
    if (content.contentType === pkijs.id_ContentType_EncryptedData) {
      // Parse a copy: pkijs' schema comparison marks the block it reads, and the
      // authenticated safe must parse the original afterwards.
      const encrypted = pkijs.EncryptedData.fromBER(content.content.toBER(false));
      assertPbes2Iterations(encrypted.encryptedContentInfo.contentEncryptionAlgorithm);
    }
  }
  try {
    await safe.parseInternalValues(
      { safeContents: safe.safeContents.map(() => ({ password: passwordBytes })) },
      engine,
    );
  } catch {
    throw new RecryptError('unsupported', 'a PKCS#12 safe uses an encryption this reader lacks');
  }

  const certificates: Uint8Array[] = [];
  let deviceSecret: Scalar | undefined;
  for (const contents of safe.parsedValue?.safeContents ?? []) {
    for (const bag of contents.value.safeBags) {
      if (bag.bagId === OID_CERT_BAG && bag.bagValue instanceof pkijs.CertBag) {
        const value = bag.bagValue.certValue;
        if (value instanceof asn1js.OctetString)
          certificates.push(new Uint8Array(value.valueBlock.valueHexView));
      } else if (
        bag.bagId === OID_SHROUDED_KEY_BAG &&
        bag.bagValue instanceof pkijs.PKCS8ShroudedKeyBag
      ) {
        if (deviceSecret !== undefined)
          throw new RecryptError('unsupported', 'the PKCS#12 holds more than one key');
        assertPbes2Iterations(bag.bagValue.encryptionAlgorithm);
        deviceSecret = decryptKey(bag.bagValue, password);
      }
    }
  }
  if (deviceSecret === undefined) throw malformed('no shrouded key bag');
  const devicePoint = Buffer.from(publicPoint(deviceSecret));
  const matches = (der: Uint8Array): boolean => {
    try {
      return devicePoint.equals(Buffer.from(certificatePublicPoint(der)));
    } catch {
      return false;
    }
  };
  const certificate = certificates.find(matches);
  if (certificate === undefined) throw malformed('no certificate for the key');
  return {
    deviceSecret,
    certificate,
    caCertificates: certificates.filter((c) => c !== certificate),
  };
}

function assertIterations(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_READ_ITERATIONS) {
    throw new RecryptError('unsupported', `PKCS#12 iteration count ${count} is out of range`);
  }
}

/** Checks the PBKDF2 iteration count of a PBES2 AlgorithmIdentifier before anything derives a key. */
function assertPbes2Iterations(algorithm: pkijs.AlgorithmIdentifier): void {
  if (algorithm.algorithmId !== OID_PBES2) {
    throw new RecryptError(
      'unsupported',
      `PKCS#12 encryption ${algorithm.algorithmId} is not PBES2`,
    );
  }
  try {
    const pbes2 = new pkijs.PBES2Params({ schema: algorithm.algorithmParams });
    const pbkdf2 = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams });
    assertIterations(pbkdf2.iterationCount);
  } catch (error) {
    if (error instanceof RecryptError) throw error;
    throw malformed('bad PBES2 parameters');
  }
}

/** Decrypts the EncryptedPrivateKeyInfo with node:crypto and takes d from its JWK. */
function decryptKey(bag: pkijs.PKCS8ShroudedKeyBag, password: string): Scalar {
  const encrypted = Buffer.from(bag.toSchema().toBER(false));
  let jwk: { crv?: string; d?: string };
  try {
    jwk = createPrivateKey({
      key: encrypted,
      format: 'der',
      type: 'pkcs8',
      passphrase: password,
    }).export({
      format: 'jwk',
    });
  } catch {
    // The MAC already matched, so this is a key under another password or cipher.
    throw new RecryptError('bad-password', 'the PKCS#12 key does not decrypt with this password');
  }
  if (jwk.crv !== 'P-256' || jwk.d === undefined) {
    throw new RecryptError('unsupported', 'the PKCS#12 key is not a P-256 key');
  }
  return scalarFromBytes(Buffer.from(jwk.d, 'base64url'));
}
