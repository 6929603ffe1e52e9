/**
 * The device .p12 against the limits of the engines that import it (docs/clients.md):
 * gpgsm's PKCS#12 reader (KMail, Kleopatra) takes PBKDF2 salts of 8 to 32 bytes and a
 * positive int iteration count, and reads PBES2 with AES-CBC only. OpenSSL and NSS imports
 * are in pkcs12.test.ts; this file checks the structure and runs gpgsm itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueDeviceCertificate, issueOwnerCa } from '../../src/recrypt/certificates.js';
import { buildDevicePkcs12 } from '../../src/recrypt/pkcs12.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const gpgsm = requireBinary('gpgsm');
const gpgconf = requireBinary('gpgconf');

const OID_PBES2 = '1.2.840.113549.1.5.13';
const OID_PBKDF2 = '1.2.840.113549.1.5.12';
const AES_CBC = new Set([
  '2.16.840.1.101.3.4.1.2', // aes128-CBC
  '2.16.840.1.101.3.4.1.22', // aes192-CBC
  '2.16.840.1.101.3.4.1.42', // aes256-CBC
]);
const INT_MAX = 2 ** 31 - 1;
const password = 'pässword 1';

const tmp = tempDir('recrypt-p12-engines-');
afterAll(() => tmp.remove());

interface Pbes2Facts {
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
function passwordParameters(der: Uint8Array): { pbes2: Pbes2Facts[]; macSalt: number } {
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
  return { pbes2, macSalt: pfx.macData!.macSalt.valueBlock.valueHexView.length };
}

describe('device .p12 within every importer’s limits', () => {
  let p12: Uint8Array;

  beforeAll(async () => {
    const now = new Date();
    const ca = await issueOwnerCa({ now });
    const d = randomScalar();
    const certificate = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(d),
      address: 'bob@example.org',
      name: 'Bob laptop',
      now,
    });
    p12 = await buildDevicePkcs12({
      deviceSecret: d,
      certificate,
      caCertificates: [ca.certificate],
      password,
    });
  });

  it('every PBES2 use: PBKDF2-HMAC-SHA256, salt 8..32 bytes, int iterations, AES-CBC', () => {
    const { pbes2, macSalt } = passwordParameters(p12);
    // The certificate safe and the key bag: both must be encrypted.
    expect(pbes2.map((p) => p.where)).toEqual(['EncryptedData 0', 'key bag in 1']);
    for (const facts of pbes2) {
      expect(facts.salt, facts.where).toBeGreaterThanOrEqual(8);
      expect(facts.salt, facts.where).toBeLessThanOrEqual(32);
      expect(facts.iterations, facts.where).toBeGreaterThanOrEqual(1);
      expect(facts.iterations, facts.where).toBeLessThanOrEqual(INT_MAX);
      expect(facts.prf, facts.where).toBe('1.2.840.113549.2.9');
      expect(AES_CBC.has(facts.cipher), facts.where).toBe(true);
    }
    expect(macSalt).toBeGreaterThanOrEqual(8);
    expect(macSalt).toBeLessThanOrEqual(32);
  });

  /** Our file with its certificate safe's PBKDF2 salt swapped for 64 bytes (pkijs' default). */
  function withLongSalt(der: Uint8Array): Uint8Array {
    const pfx = pkijs.PFX.fromBER(der);
    const safe = pkijs.AuthenticatedSafe.fromBER(
      (pfx.authSafe.content as asn1js.OctetString).getValue(),
    );
    const info = safe.safeContents[0]!;
    const encrypted = new pkijs.EncryptedData({ schema: info.content });
    const algorithm = encrypted.encryptedContentInfo.contentEncryptionAlgorithm;
    const pbes2 = new pkijs.PBES2Params({ schema: algorithm.algorithmParams });
    const pbkdf2 = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams });
    pbkdf2.salt = new asn1js.OctetString({ valueHex: new Uint8Array(64).fill(7) });
    pbes2.keyDerivationFunc.algorithmParams = pbkdf2.toSchema();
    algorithm.algorithmParams = pbes2.toSchema();
    info.content = encrypted.toSchema();
    pfx.authSafe.content = new asn1js.OctetString({ valueHex: safe.toSchema().toBER(false) });
    return new Uint8Array(pfx.toSchema().toBER(false));
  }

  /** What `gpgsm --import` says of a .p12, in a throwaway GNUPGHOME. */
  function gpgsmImport(name: string, der: Uint8Array): string {
    const home = join(tmp.path, `gnupg-${name}`);
    mkdirSync(home, { mode: 0o700 });
    writeFileSync(join(home, 'gpg-agent.conf'), 'allow-loopback-pinentry\n');
    const file = join(tmp.path, `${name}.p12`);
    writeFileSync(file, der);
    const env = { ...process.env, GNUPGHOME: home };
    try {
      const result = spawnSync(
        gpgsm,
        ['--batch', '--pinentry-mode', 'loopback', '--passphrase', password, '--import', file],
        { encoding: 'utf8', env, timeout: 60_000 },
      );
      return `${result.stdout}${result.stderr}`;
    } finally {
      spawnSync(gpgconf, ['--kill', 'all'], { env });
    }
  }

  const PBES2_ERROR = /encryptedData error at "pkcs5PBES2-params", offset (\d+)/;

  it('gpgsm reads past the salt where a 64-byte salt stops it', () => {
    const control = gpgsmImport('long-salt', withLongSalt(p12));
    const ours = gpgsmImport('ours', p12);
    // gpgsm ≥ 2.2.42 names the fault; Debian 12's 2.2.40 reports where it stopped.
    expect(control).toMatch(/bad length of salt \(64\)|pkcs5PBES2-params", offset/);
    expect(ours).not.toMatch(/bad length of salt/);
    if (/imported: [1-9]/.test(ours)) return;
    // 2.2.40 reads no HMAC-SHA256 PBES2 at all (OpenSSL's own files neither): it stops at
    // the PRF, which comes after the salt, so further in than on the control.
    const stoppedOurs = PBES2_ERROR.exec(ours);
    const stoppedControl = PBES2_ERROR.exec(control);
    expect(stoppedOurs, ours).not.toBeNull();
    expect(stoppedControl, control).not.toBeNull();
    expect(Number(stoppedOurs![1])).toBeGreaterThan(Number(stoppedControl![1]));
  });

  it('the .p12 writer is the only place that builds a PFX', () => {
    const writers: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts') && /new pkijs\.PFX\(/.test(readFileSync(path, 'utf8')))
          writers.push(path);
      }
    };
    walk('src');
    expect(writers).toEqual([join('src', 'recrypt', 'pkcs12.ts')]);
  });
});
