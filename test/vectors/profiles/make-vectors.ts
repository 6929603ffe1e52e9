/**
 * Regenerates the data files in this directory (run once; the files are committed):
 *   npx tsx test/vectors/profiles/make-vectors.ts
 * openssl makes the keys and certificates, so they are independent of our code; the
 * profile is then signed with signProfile, and the negative cases are built by hand.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyFingerprint } from '../../../src/recrypt/udf.js';
import { buildProfile, signProfile } from '../../../src/profiles/profile.js';
import { base64url, signCompactEs256, spkiOfPoint } from '../../../src/profiles/jws.js';
import { p256 } from '@noble/curves/nist.js';

const dir = new URL('.', import.meta.url).pathname;
const at = (name: string): string => join(dir, name);
const openssl = (...args: string[]): string => execFileSync('openssl', args, { encoding: 'utf8' });

function secretOf(pemFile: string): Uint8Array {
  const jwk = createPrivateKey(readFileSync(at(pemFile))).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.d!, 'base64url'));
}

// Owner CA: P-256 key, self-signed certificate named CN=<UDF of its key> (docs/design.md §2).
// Keys are kept when present, so a change of the UDF definition only re-derives the rest.
for (const name of ['owner-key.pem', 'other-key.pem', 'group-key.pem']) {
  if (!existsSync(at(name))) {
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', at(name));
  }
}
const ownerSecret = secretOf('owner-key.pem');
const ownerPoint = p256.getPublicKey(ownerSecret, false);
const ownerUdf = keyFingerprint(spkiOfPoint(ownerPoint));
openssl('req', '-new', '-x509', '-key', at('owner-key.pem'), '-subj', `/CN=${ownerUdf}`, '-days', '3650',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign',
  '-set_serial', '0x41' + '00'.repeat(15), '-outform', 'DER', '-out', at('owner-ca.cer'));
// Group certificate, issued by the owner CA.
writeFileSync(at('group.ext'), 'subjectAltName=email:alice@example.org\nkeyUsage=critical,keyAgreement\n');
openssl('req', '-new', '-key', at('group-key.pem'), '-subj', '/CN=Alice Example', '-out', at('group.csr'));
openssl('x509', '-req', '-in', at('group.csr'), '-CA', at('owner-ca.cer'), '-CAform', 'DER', '-CAkey', at('owner-key.pem'),
  '-set_serial', '0x42' + '01'.repeat(15), '-days', '3650', '-extfile', at('group.ext'), '-outform', 'DER', '-out', at('group.cer'));
// A certificate the owner did NOT issue (self-signed by another key).
openssl('req', '-new', '-x509', '-key', at('other-key.pem'), '-subj', '/CN=Mallory', '-days', '3650',
  '-outform', 'DER', '-out', at('foreign.cer'));
execFileSync('rm', ['-f', at('group.csr'), at('group.ext')]);

const groupCertificate = new Uint8Array(readFileSync(at('group.cer')));
const profile = buildProfile({
  address: 'alice@example.org',
  name: 'Alice Example',
  ownerPublicKey: ownerPoint,
  groupCertificate,
  prefer: 'encrypt',
  require: 'none',
  issued: new Date('2026-11-01T00:00:00Z'),
  expires: new Date('2027-11-01T00:00:00Z'),
});
writeFileSync(at('profile.json'), `${JSON.stringify(profile, null, 2)}\n`);
writeFileSync(at('profile.jws'), signProfile(profile, ownerSecret));

// Negative cases: each must fail verification with `code` (at `now` of valid.json).
const otherSecret = secretOf('other-key.pem');
const payload = (p: object): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify({ ProfileMailPublic: p })));
const typ = { typ: 'mail-profile+jws' };
const unsigned = (header: object, body: Uint8Array): string =>
  `${base64url(Buffer.from(JSON.stringify(header)))}.${base64url(body)}.`;
const foreignKey = readFileSync(at('foreign.cer')).toString('base64');
const negative = [
  { name: 'signed by another key claiming the owner UDF', code: 'udf-mismatch', jws: signCompactEs256(payload(profile), otherSecret, typ) },
  { name: 'alg none', code: 'unsupported', jws: unsigned({ alg: 'none', typ: typ.typ }, payload(profile)) },
  { name: 'wrong typ', code: 'unsupported', jws: signCompactEs256(payload(profile), ownerSecret, { typ: 'JWT' }) },
  {
    name: 'payload not a profile',
    code: 'malformed',
    jws: signCompactEs256(payload({ ...profile, connection: [] }), ownerSecret, typ),
  },
  {
    name: 'key not issued by the owner',
    code: 'certificate-mismatch',
    jws: signCompactEs256(payload({ ...profile, connection: [{ ...profile.connection[0], key: foreignKey }] }), ownerSecret, typ),
  },
  {
    name: 'issued in the future',
    code: 'expired',
    jws: signCompactEs256(payload({ ...profile, issued: '2027-01-01T00:00:00Z' }), ownerSecret, typ),
  },
  { name: 'two parts', code: 'malformed', jws: 'eyJhbGciOiJFUzI1NiJ9.e30' },
];
writeFileSync(at('negative.json'), `${JSON.stringify(negative, null, 2)}\n`);
writeFileSync(
  at('valid.json'),
  `${JSON.stringify({ address: 'alice@example.org', udf: ownerUdf, now: '2026-11-29T00:00:00Z', expiredAt: '2027-11-01T00:00:00Z' }, null, 2)}\n`,
);
