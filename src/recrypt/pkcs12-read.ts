/**
 * Reads a device PKCS#12 (pkcs12.ts writes it). Every count a file asks for is checked
 * before anything derives a key, and the key is decrypted through node:crypto (OpenSSL
 * parses the encrypted PKCS#8), so what we write is checked by an independent
 * implementation on every read.
 */
import { createPrivateKey } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { certificatePublicPoint } from './certificates.js';
import { RecryptError } from './errors.js';
import { engine, OID_CERT_BAG, OID_PBES2, OID_SHROUDED_KEY_BAG, utf8 } from './pkcs12-engine.js';
import { publicPoint, scalarFromBytes } from './scalar.js';
import type { Scalar } from './types.js';

/** The most iterations a file we read may ask for: a crafted count must not hang `read`. */
export const MAX_READ_ITERATIONS = 10_000_000;

export interface DevicePkcs12 {
  deviceSecret: Scalar;
  certificate: Uint8Array;
  caCertificates: Uint8Array[];
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
