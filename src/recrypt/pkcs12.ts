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
 * This file writes; the reader is pkcs12-read.ts, what both share is in pkcs12-engine.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { subjectCommonName, certificatePublicPoint } from './certificates.js';
import { RecryptError } from './errors.js';
import {
  engine,
  OID_CERT_BAG,
  OID_FRIENDLY_NAME,
  OID_LOCAL_KEY_ID,
  OID_SHA256,
  OID_SHROUDED_KEY_BAG,
  OID_X509_CERT_BAG,
  PKCS12_ITERATIONS,
  PKCS12_SALT_BYTES,
  utf8,
} from './pkcs12-engine.js';
import { checkScalar, privateKeyObject, publicPoint } from './scalar.js';
import type { Scalar } from './types.js';

export { PKCS12_ITERATIONS, PKCS12_SALT_BYTES } from './pkcs12-engine.js';
export { MAX_READ_ITERATIONS, readPkcs12, type DevicePkcs12 } from './pkcs12-read.js';

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
