import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CA_YEARS,
  RECIPIENT_ID_LENGTH,
  LEAF_YEARS,
  certificatePublicPoint,
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
  spkiOfPoint,
  toPem,
  type OwnerCa,
} from '../../src/recrypt/certificates.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import { KEY_FINGERPRINT_LENGTH, keyFingerprint } from '../../src/recrypt/udf.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const openssl = requireBinary('openssl');
const gpgsm = requireBinary('gpgsm');
const gpgconf = requireBinary('gpgconf');
const now = new Date('2026-03-01T12:00:00Z');
const address = 'alice@example.org';

const tmp = tempDir('recrypt-certs-');
afterAll(() => tmp.remove());

function writePem(name: string, der: Uint8Array): string {
  const path = join(tmp.path, name);
  writeFileSync(path, toPem(der));
  return path;
}

function runOpenssl(args: string[]): string {
  return execFileSync(openssl, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The IssuerAndSerialNumber pieces, parsed independently with asn1js. */
function parseRecipientId(id: Uint8Array): { issuer: Uint8Array; serial: Uint8Array } {
  const parsed = asn1js.fromBER(id);
  expect(parsed.offset).toBe(id.length);
  const sequence = parsed.result as asn1js.Sequence;
  const [issuer, serial] = sequence.valueBlock.value as [asn1js.Sequence, asn1js.Integer];
  expect(sequence.valueBlock.value.length).toBe(2);
  return { issuer: issuer.valueBeforeDecodeView, serial: serial.valueBlock.valueHexView };
}

describe('owner CA, group and device certificates', () => {
  let ca: OwnerCa;
  let group: Uint8Array;
  let device: Uint8Array;
  const g = randomScalar();
  const d = randomScalar();

  beforeAll(async () => {
    ca = await issueOwnerCa({ now });
    group = await issueGroupCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(g),
      address,
      name: 'Alice Example',
      now,
    });
    device = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(d),
      address,
      name: 'Alice laptop',
      now,
    });
  });

  it('openssl parses all three and shows the profile', () => {
    const caText = runOpenssl([
      'x509',
      '-in',
      writePem('ca.pem', ca.certificate),
      '-noout',
      '-text',
    ]);
    const fingerprint = keyFingerprint(spkiOfPoint(publicPoint(ca.secret)));
    expect(caText).toContain(`Issuer: CN = ${fingerprint}`);
    expect(caText).toContain(`Subject: CN = ${fingerprint}`);
    expect(caText).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(caText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(caText).toContain('ecdsa-with-SHA256');

    for (const [file, der, cn] of [
      ['group.pem', group, 'Alice Example'],
      ['device.pem', device, 'Alice laptop'],
    ] as const) {
      const text = runOpenssl(['x509', '-in', writePem(file, der), '-noout', '-text']);
      expect(text).toContain(`Issuer: CN = ${fingerprint}`);
      expect(text).toContain(`Subject: CN = ${cn}`);
      expect(text).toContain('Public Key Algorithm: id-ecPublicKey');
      expect(text).toContain('ASN1 OID: prime256v1');
      expect(text).toMatch(/Key Usage: critical\s+Key Agreement\n/);
      expect(text).toContain(`email:${address}`);
      expect(text).toContain('X509v3 Subject Key Identifier');
      expect(text).toContain('X509v3 Authority Key Identifier');
    }
  });

  it('openssl verify accepts group and device certificates against the CA', () => {
    // No `-purpose smimeencrypt`: OpenSSL's check for it demands keyEncipherment, which
    // RFC 8813 (updating RFC 5480 §3) says is not set on an EC key-agreement key.
    const caPem = writePem('ca-v.pem', ca.certificate);
    const out = runOpenssl([
      'verify',
      '-attime',
      String(Math.floor(now.getTime() / 1000) + 60),
      '-CAfile',
      caPem,
      writePem('group-v.pem', group),
      writePem('device-v.pem', device),
    ]);
    expect(out).toContain('group-v.pem: OK');
    expect(out).toContain('device-v.pem: OK');
  });

  it('the CA carries a SubjectKeyIdentifier that every issued AuthorityKeyIdentifier names', () => {
    const caSki = new x509.X509Certificate(ca.certificate).getExtension(
      x509.SubjectKeyIdentifierExtension,
    );
    expect(caSki).not.toBeNull();
    for (const der of [group, device]) {
      const aki = new x509.X509Certificate(der).getExtension(x509.AuthorityKeyIdentifierExtension);
      expect(aki?.keyId).toBe(caSki!.keyId);
    }
  });

  it('openssl verify -x509_strict accepts the chain (RFC 5280 profile checks)', () => {
    const caPem = writePem('ca-strict.pem', ca.certificate);
    const out = runOpenssl([
      'verify',
      '-x509_strict',
      '-attime',
      String(Math.floor(now.getTime() / 1000) + 60),
      '-CAfile',
      caPem,
      writePem('group-strict.pem', group),
      writePem('device-strict.pem', device),
    ]);
    expect(out).toContain('group-strict.pem: OK');
    expect(out).toContain('device-strict.pem: OK');
  });

  it('gpgsm finds the issuer of the device certificate (KMail, Kleopatra)', () => {
    const home = join(tmp.path, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: home };
    const gpg = (args: string[]): string =>
      execFileSync(gpgsm, ['--batch', ...args], { encoding: 'utf8', env, stdio: 'pipe' });
    try {
      gpg(['--import', writePem('ca-g.pem', ca.certificate), writePem('device-g.pem', device)]);
      const chain = spawnSync(gpgsm, ['--batch', '--list-chain', address], {
        encoding: 'utf8',
        env,
      });
      const said = `${chain.stdout}${chain.stderr}`;
      expect(said).not.toMatch(/issuer certificate not found|can't find issuer/i);
      expect(said).toContain('Certified by');
      expect(said).toMatch(/Subject: \/CN=Alice laptop[\s\S]*Subject: \/CN=[A-Z0-9-]{20,}\n/);
    } finally {
      spawnSync(gpgconf, ['--kill', 'all'], { env });
    }
  });

  it('openssl verify rejects a certificate from another owner CA', async () => {
    const other = await issueOwnerCa({ now });
    const caPem = writePem('other-ca.pem', other.certificate);
    expect(() =>
      runOpenssl([
        'verify',
        '-attime',
        String(Math.floor(now.getTime() / 1000) + 60),
        '-CAfile',
        caPem,
        writePem('g2.pem', group),
      ]),
    ).toThrow();
  });

  it('carries the public keys given, key identifiers and key usage as specified', () => {
    expect(Buffer.from(certificatePublicPoint(group)).equals(Buffer.from(publicPoint(g)))).toBe(
      true,
    );
    expect(Buffer.from(certificatePublicPoint(device)).equals(Buffer.from(publicPoint(d)))).toBe(
      true,
    );
    const caCert = new x509.X509Certificate(ca.certificate);
    const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    for (const der of [group, device]) {
      const cert = new x509.X509Certificate(der);
      const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!;
      expect(Buffer.from(ski.keyId, 'hex').length).toBe(20);
      expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(caSki);
      const usage = cert.getExtension(x509.KeyUsagesExtension)!;
      expect(usage.usages).toBe(x509.KeyUsageFlags.keyAgreement);
      expect(usage.critical).toBe(true);
      expect(cert.getExtension(x509.BasicConstraintsExtension)).toBeNull();
      // The issuer is the CA's subject, byte for byte.
      expect(
        Buffer.from(cert.issuerName.toArrayBuffer()).equals(
          Buffer.from(caCert.subjectName.toArrayBuffer()),
        ),
      ).toBe(true);
    }
  });

  it('validity follows the clock the caller passes', () => {
    const hour = 60 * 60 * 1000;
    const caCert = new x509.X509Certificate(ca.certificate);
    expect(caCert.notBefore.getTime()).toBe(now.getTime() - hour);
    expect(caCert.notAfter.getUTCFullYear()).toBe(now.getUTCFullYear() + CA_YEARS);
    const leaf = new x509.X509Certificate(group);
    expect(leaf.notBefore.getTime()).toBe(now.getTime() - hour);
    expect(leaf.notAfter.getUTCFullYear()).toBe(now.getUTCFullYear() + LEAF_YEARS);
  });

  it('a leaf never outlives its CA', async () => {
    const shortCa = await issueOwnerCa({ now, years: 1 });
    const leaf = await issueGroupCertificate({
      ca: shortCa.certificate,
      caSecret: shortCa.secret,
      publicKey: publicPoint(g),
      address,
      now,
    });
    const caCert = new x509.X509Certificate(shortCa.certificate);
    expect(new x509.X509Certificate(leaf).notAfter.getTime()).toBe(caCert.notAfter.getTime());
    // Default CN is the address.
    expect(new x509.X509Certificate(leaf).subject).toBe(`CN=${address}`);
  });

  it('recipientIdOf copies issuer and serial from the certificate', () => {
    for (const der of [group, device, ca.certificate]) {
      const cert = new x509.X509Certificate(der);
      const { issuer, serial } = parseRecipientId(recipientIdOf(der));
      expect(Buffer.from(issuer).equals(Buffer.from(cert.issuerName.toArrayBuffer()))).toBe(true);
      expect(Buffer.from(serial).toString('hex')).toBe(cert.serialNumber.toLowerCase());
    }
  });

  it('refuses bad arguments with typed errors', async () => {
    const base = {
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(g),
      address,
      now,
    };
    const cases: Array<[Promise<unknown>, string]> = [
      [issueGroupCertificate({ ...base, caSecret: randomScalar() }), 'invalid-argument'],
      [issueGroupCertificate({ ...base, publicKey: new Uint8Array(65) }), 'invalid-point'],
      [issueGroupCertificate({ ...base, address: 'no-at-sign' }), 'invalid-argument'],
      [issueGroupCertificate({ ...base, address: 'ünï@example.org' }), 'invalid-argument'],
      [issueGroupCertificate({ ...base, now: new Date(Number.NaN) }), 'invalid-argument'],
      [issueGroupCertificate({ ...base, ca: new Uint8Array([1, 2, 3]) }), 'malformed-der'],
      [issueDeviceCertificate({ ...base, name: '' }), 'invalid-argument'],
      [issueOwnerCa({ now, years: 0 }), 'invalid-argument'],
      [issueOwnerCa({ now, secret: 0n }), 'invalid-scalar'],
    ];
    for (const [promise, code] of cases) {
      await expect(promise).rejects.toBeInstanceOf(RecryptError);
      await expect(promise).rejects.toMatchObject({ code });
    }
    expect(() => recipientIdOf(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toThrow(
      RecryptError,
    );
    expect(() => recipientIdOf(new Uint8Array(0))).toThrow(RecryptError);
    expect(() => recipientIdOf(Buffer.concat([group, Buffer.from([0])]))).toThrow(RecryptError);
  });
});

describe('fixed-length recipient identifiers', () => {
  it('every certificate of every owner CA gives an IssuerAndSerialNumber of one length', async () => {
    const lengths = new Set<number>();
    const serialFirstBytes: number[] = [];
    for (let owner = 0; owner < 6; owner++) {
      // Different clocks too: dates beyond 2049 switch notAfter to GeneralizedTime.
      const when = new Date(now.getTime() + owner * 5 * 365 * 24 * 3600 * 1000);
      const ca = await issueOwnerCa({ now: when });
      const caSubject = new x509.X509Certificate(ca.certificate).subject;
      expect(caSubject.length).toBe('CN='.length + KEY_FINGERPRINT_LENGTH);
      const issued = [ca.certificate];
      issued.push(
        await issueGroupCertificate({
          ca: ca.certificate,
          caSecret: ca.secret,
          publicKey: publicPoint(randomScalar()),
          address: `list-${owner}@lists.example.org`,
          name: 'A rather longer group name than the others have',
          now: when,
        }),
      );
      for (let i = 0; i < 4; i++) {
        issued.push(
          await issueDeviceCertificate({
            ca: ca.certificate,
            caSecret: ca.secret,
            publicKey: publicPoint(randomScalar()),
            address: `u${owner}@example.org`,
            name: `device ${i}`.repeat(i + 1),
            now: when,
          }),
        );
      }
      for (const der of issued) {
        const id = recipientIdOf(der);
        lengths.add(id.length);
        const { serial } = parseRecipientId(id);
        expect(serial.length).toBe(16);
        serialFirstBytes.push(serial[0]!);
      }
    }
    expect([...lengths]).toEqual([RECIPIENT_ID_LENGTH]);
    expect(serialFirstBytes.every((b) => b >= 0x01 && b <= 0x7f)).toBe(true);
  });
});
