/**
 * The structure of a .p12 against the limits of the engines that import it
 * (docs/clients.md): gpgsm's PKCS#12 reader (KMail, Kleopatra) takes PBKDF2 salts of 8 to
 * 32 bytes and a positive int iteration count, and reads PBES2 with AES-CBC only; we write
 * PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, and a 16-byte MAC salt. Used on every
 * .p12 the project writes: the library's, `device add`'s and `device join`'s files.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { expect } from 'vitest';
import { PKCS12_SALT_BYTES } from '../../src/recrypt/pkcs12.js';

const OID_PBES2 = '1.2.840.113549.1.5.13';
const OID_PBKDF2 = '1.2.840.113549.1.5.12';
const OID_HMAC_SHA256 = '1.2.840.113549.2.9';
const OID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const INT_MAX = 2 ** 31 - 1;

export interface Pbes2Facts {
  where: string;
  salt: number;
  iterations: number;
  prf: string | undefined;
  cipher: string;
}

function pbes2Facts(where: string, algorithm: pkijs.AlgorithmIdentifier): Pbes2Facts {
  expect(algorithm.algorithmId, where).toBe(OID_PBES2);
  const pbes2 = new pkijs.PBES2Params({ schema: algorithm.algorithmParams });
  expect(pbes2.keyDerivationFunc.algorithmId, where).toBe(OID_PBKDF2);
  const pbkdf2 = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams });
  const salt = pbkdf2.salt as asn1js.OctetString;
  return {
    where,
    salt: salt.valueBlock.valueHexView.length,
    iterations: pbkdf2.iterationCount,
    prf: pbkdf2.prf?.algorithmId,
    cipher: pbes2.encryptionScheme.algorithmId,
  };
}

/** Every password-based parameter set in a PFX: each PBES2 use, and the MAC. */
export function passwordParameters(der: Uint8Array): {
  pbes2: Pbes2Facts[];
  macSalt: number;
  macIterations: number;
  macDigest: string;
} {
  const pfx = pkijs.PFX.fromBER(der);
  const safe = pkijs.AuthenticatedSafe.fromBER(
    (pfx.authSafe.content as asn1js.OctetString).getValue(),
  );
  const pbes2: Pbes2Facts[] = [];
  for (const [index, info] of safe.safeContents.entries()) {
    if (info.contentType === pkijs.id_ContentType_EncryptedData) {
      const encrypted = new pkijs.EncryptedData({ schema: info.content });
      pbes2.push(
        pbes2Facts(
          `EncryptedData ${index}`,
          encrypted.encryptedContentInfo.contentEncryptionAlgorithm,
        ),
      );
    } else {
      const contents = pkijs.SafeContents.fromBER((info.content as asn1js.OctetString).getValue());
      for (const bag of contents.safeBags) {
        if (bag.bagValue instanceof pkijs.PKCS8ShroudedKeyBag) {
          pbes2.push(pbes2Facts(`key bag in ${index}`, bag.bagValue.encryptionAlgorithm));
        }
      }
    }
  }
  const mac = pfx.macData!;
  return {
    pbes2,
    macSalt: mac.macSalt.valueBlock.valueHexView.length,
    macIterations: mac.iterations ?? 1,
    macDigest: mac.mac.digestAlgorithm.algorithmId,
  };
}

/**
 * Fails unless both the certificate safe and the key bag are PBES2 (PBKDF2-HMAC-SHA256,
 * AES-256-CBC) with a 16-byte salt and an int iteration count, and the MAC is HMAC-SHA256
 * with a 16-byte salt: inside gpgsm's 8..32-byte salt limit, as OpenSSL 3 writes them.
 */
export function expectWithinImporterLimits(der: Uint8Array, what = '.p12'): void {
  const { pbes2, macSalt, macIterations, macDigest } = passwordParameters(der);
  expect(
    pbes2.map((p) => p.where),
    what,
  ).toEqual(['EncryptedData 0', 'key bag in 1']);
  for (const facts of pbes2) {
    const where = `${what}: ${facts.where}`;
    expect(facts.salt, where).toBe(PKCS12_SALT_BYTES);
    expect(facts.salt, where).toBeGreaterThanOrEqual(8);
    expect(facts.salt, where).toBeLessThanOrEqual(32);
    expect(facts.iterations, where).toBeGreaterThanOrEqual(1);
    expect(facts.iterations, where).toBeLessThanOrEqual(INT_MAX);
    expect(facts.prf, where).toBe(OID_HMAC_SHA256);
    expect(facts.cipher, where).toBe(OID_AES256_CBC);
  }
  expect(macSalt, `${what}: MAC salt`).toBe(PKCS12_SALT_BYTES);
  expect(macSalt, `${what}: MAC salt`).toBeLessThanOrEqual(32);
  expect(macIterations, `${what}: MAC iterations`).toBeGreaterThanOrEqual(1);
  expect(macIterations, `${what}: MAC iterations`).toBeLessThanOrEqual(INT_MAX);
  expect(macDigest, `${what}: MAC digest`).toBe(OID_SHA256);
}
