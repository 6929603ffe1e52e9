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
import { expectWithinImporterLimits } from '../helpers/pkcs12-limits.js';
import { tempDir } from '../helpers/tmp.js';

const gpgsm = requireBinary('gpgsm');
const gpgconf = requireBinary('gpgconf');

const password = 'pässword 1';

const tmp = tempDir('recrypt-p12-engines-');
afterAll(() => tmp.remove());

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

  it('every PBES2 use: PBKDF2-HMAC-SHA256, 16-byte salt (gpgsm: 8..32), int iterations, AES-256-CBC', () => {
    expectWithinImporterLimits(p12);
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

  /** The files under src/ whose text matches `pattern`. */
  function sourcesMatching(pattern: RegExp): string[] {
    const found: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts') && pattern.test(readFileSync(path, 'utf8'))) found.push(path);
      }
    };
    walk('src');
    return found.sort();
  }

  it('the .p12 writer is the only place that builds a PFX or has OpenSSL write one', () => {
    expect(sourcesMatching(/new pkijs\.PFX\(/)).toEqual([join('src', 'recrypt', 'pkcs12.ts')]);
    expect(sourcesMatching(/['"]pkcs12['"]|pkcs12 -export/)).toEqual([]);
  });

  it('every caller of the writer has its written file checked against these limits', () => {
    // `device add` (test/owner/devices.test.ts) and `device join` after approval
    // (test/cli/device-pairing.test.ts) run expectWithinImporterLimits on the file they
    // wrote; a new caller must get the same check before it joins this list.
    expect(sourcesMatching(/\bbuildDevicePkcs12\(/)).toEqual([
      join('src', 'owner', 'devices.ts'),
      join('src', 'owner', 'pairing-device.ts'),
      join('src', 'recrypt', 'pkcs12.ts'),
    ]);
  });
});
