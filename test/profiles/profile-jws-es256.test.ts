import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ProfileError,
  buildProfile,
  ownerUdf,
  signProfile,
  verifyProfile,
  type MailPolicy,
} from '../../src/profiles/index.js';
import { p256 } from '@noble/curves/nist.js';
import { hasControlCharacters } from '../../src/profiles/schema.js';
import {
  loadProfileVector,
  vectorBytes,
  vectorJson,
  vectorSecret,
  vectorText,
  type NegativeVector,
  type ValidVector,
} from '../helpers/profiles-vectors.js';

const valid = vectorJson<ValidVector>('valid.json');
const now = new Date(valid.now);
const jws = vectorText('profile.jws');
const ownerSecret = vectorSecret('owner-key.pem');

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ProfileError) return error.code;
    throw error;
  }
  return 'no error';
}

describe('the stored vector', () => {
  it('verifies, and yields the stored profile, key and certificate', () => {
    const verified = verifyProfile(jws, {
      expectedAddress: valid.address,
      expectedUdf: valid.udf,
      now,
    });
    expect(verified.profile).toEqual(loadProfileVector());
    expect(verified.profile.udf).toBe(valid.udf);
    expect(Buffer.from(verified.groupCertificate)).toEqual(Buffer.from(vectorBytes('group.cer')));
  });

  it('is reproduced byte for byte by signing the stored profile with the stored key (RFC 6979)', () => {
    expect(signProfile(loadProfileVector(), ownerSecret)).toBe(jws);
  });

  it('fails after any one character of it is changed', () => {
    const failures = new Map<string, number>();
    for (let i = 0; i < jws.length; i++) {
      const replacement = jws[i] === 'A' ? 'B' : 'A';
      const tampered = jws.slice(0, i) + replacement + jws.slice(i + 1);
      const code = codeOf(() => verifyProfile(tampered, { now }));
      failures.set(code, (failures.get(code) ?? 0) + 1);
    }
    expect(failures.get('no error')).toBeUndefined();
    expect([...failures.values()].reduce((a, b) => a + b, 0)).toBe(jws.length);
    expect(failures.get('bad-signature')).toBeGreaterThan(jws.length / 2);
  });

  it.each(vectorJson<NegativeVector[]>('negative.json'))(
    'refuses "$name" with $code',
    ({ jws: bad, code }) => {
      expect(codeOf(() => verifyProfile(bad, { now }))).toBe(code);
    },
  );

  it('is expired at its expiry time and after', () => {
    expect(codeOf(() => verifyProfile(jws, { now: new Date(valid.expiredAt) }))).toBe('expired');
    expect(
      verifyProfile(jws, { now: new Date(Date.parse(valid.expiredAt) - 1000) }).profile.address,
    ).toBe(valid.address);
  });

  it('checks the address case-insensitively and refuses another one', () => {
    expect(
      verifyProfile(jws, { expectedAddress: valid.address.toUpperCase(), now }).profile.address,
    ).toBe(valid.address);
    expect(codeOf(() => verifyProfile(jws, { expectedAddress: 'bob@example.org', now }))).toBe(
      'address-mismatch',
    );
    expect(codeOf(() => verifyProfile(jws, { expectedAddress: 'not an address', now }))).toBe(
      'invalid-argument',
    );
  });

  it('accepts the UDF at a shorter precision (≥ 7 groups) and refuses others', () => {
    const groups = valid.udf.split('-');
    expect(
      verifyProfile(jws, { expectedUdf: groups.slice(0, 7).join('-').toLowerCase(), now }).profile
        .udf,
    ).toBe(valid.udf);
    expect(
      codeOf(() => verifyProfile(jws, { expectedUdf: groups.slice(0, 6).join('-'), now })),
    ).toBe('udf-mismatch');
    expect(codeOf(() => verifyProfile(jws, { expectedUdf: valid.udf.slice(0, -1), now }))).toBe(
      'udf-mismatch',
    );
    const other = ownerUdf(p256.getPublicKey(vectorSecret('other-key.pem'), false));
    expect(codeOf(() => verifyProfile(jws, { expectedUdf: other, now }))).toBe('udf-mismatch');
  });

  it('carries the UDF of the owner CA key, the same as the CA certificate names itself', async () => {
    const { X509Certificate } = await import('node:crypto');
    const ca = new X509Certificate(Buffer.from(vectorBytes('owner-ca.cer')));
    const spki = new Uint8Array(ca.publicKey.export({ type: 'spki', format: 'der' }));
    expect(ownerUdf(spki)).toBe(valid.udf);
    expect(ca.subject).toBe(`CN=${valid.udf}`);
  });
});

describe('signProfile refuses what would not verify', () => {
  const profile = loadProfileVector();

  it('a profile whose udf is not the signing key', () => {
    expect(codeOf(() => signProfile(profile, vectorSecret('other-key.pem')))).toBe('udf-mismatch');
  });

  it('a connection key the owner did not issue', () => {
    const foreign = Buffer.from(vectorBytes('foreign.cer')).toString('base64');
    const bad = { ...profile, connection: [{ ...profile.connection[0]!, key: foreign }] };
    expect(codeOf(() => signProfile(bad, ownerSecret))).toBe('invalid-argument');
  });

  it.each([
    ['zero scalar', new Uint8Array(32)],
    ['short scalar', new Uint8Array(31).fill(1)],
    ['scalar ≥ n', new Uint8Array(32).fill(0xff)],
  ])('a bad owner secret: %s', (_name, secret) => {
    expect(codeOf(() => signProfile(profile, secret))).toBe('invalid-argument');
  });

  it.each([
    ['bad address', { address: 'alice@' }],
    ['control character in name', { name: 'Alice\nBcc: x' }],
    ['unknown policy', { connection: [{ ...profile.connection[0]!, require: 'always' }] }],
    ['OpenPGP', { connection: [{ ...profile.connection[0]!, encrypt: 'OpenPGP' }] }],
    ['issued with an offset', { issued: '2026-11-01T00:00:00+01:00' }],
  ])('a profile with %s', (_name, change) => {
    expect(
      codeOf(() => signProfile({ ...profile, ...change } as typeof profile, ownerSecret)),
    ).toBe('invalid-argument');
  });
});

describe('round trip', () => {
  const group = vectorBytes('group.cer');
  const ownerPublicKey = p256.getPublicKey(ownerSecret, false);
  const policy = fc.constantFrom<MailPolicy>('none', 'sign', 'encrypt', 'sign-encrypt');

  it('any valid name, local part and policy signs and verifies to the same profile', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 80 }).filter((s) => !hasControlCharacters(s)),
        fc
          .stringMatching(/^[a-z0-9](?:[a-z0-9._+-]{0,20}[a-z0-9])?$/)
          .filter((s) => !s.includes('..')),
        policy,
        policy,
        (name, local, prefer, require) => {
          const profile = buildProfile({
            address: `${local}@example.org`,
            name,
            ownerPublicKey,
            groupCertificate: group,
            prefer,
            require,
            issued: new Date('2026-11-01T00:00:00Z'),
          });
          const verified = verifyProfile(signProfile(profile, ownerSecret), {
            expectedAddress: `${local}@example.org`,
            now,
          });
          expect(verified.profile).toEqual(profile);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('buildProfile refuses bad arguments', () => {
  const base = {
    address: 'alice@example.org',
    name: 'Alice',
    ownerPublicKey: p256.getPublicKey(ownerSecret, false),
    groupCertificate: vectorBytes('group.cer'),
    issued: new Date('2026-11-01T00:00:00Z'),
  };
  const offCurve = new Uint8Array(65).fill(1);
  offCurve[0] = 4;

  it.each([
    ['a point off the curve', { ownerPublicKey: offCurve }],
    ['a compressed point', { ownerPublicKey: p256.getPublicKey(ownerSecret, true) }],
    ['an SPKI of another curve’s size', { ownerPublicKey: new Uint8Array([0x30, 0x00]) }],
    ['an invalid date', { issued: new Date('nope') }],
    ['an empty name', { name: '' }],
  ])('%s', (_name, change) => {
    expect(codeOf(() => buildProfile({ ...base, ...change }))).toBe('invalid-argument');
  });
});
