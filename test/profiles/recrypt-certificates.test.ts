/**
 * Profiles over the certificates the recryption core issues (src/recrypt/certificates.ts):
 * what `recrypt profile publish` will do. The profile's udf must be the name the owner CA
 * gives itself (CN=<UDF>), so that a sender holding either can check the other.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { issueGroupCertificate, issueOwnerCa } from '../../src/recrypt/certificates.js';
import {
  buildProfile,
  signProfile,
  smimeaRecord,
  verifyProfile,
} from '../../src/profiles/index.js';

describe('a profile for an owner CA and group certificate from src/recrypt', () => {
  it('signs with the CA secret, verifies, and names the CA by its CN', async () => {
    const now = new Date('2026-11-29T06:00:00Z');
    const ca = await issueOwnerCa({ now });
    const groupPoint = p256.getPublicKey(p256.utils.randomSecretKey(), false);
    const group = await issueGroupCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: groupPoint,
      address: 'dave@example.org',
      now,
    });
    const caSpki = new Uint8Array(
      new X509Certificate(Buffer.from(ca.certificate)).publicKey.export({
        type: 'spki',
        format: 'der',
      }),
    );
    const profile = buildProfile({
      address: 'dave@example.org',
      name: 'Dave',
      ownerPublicKey: caSpki,
      groupCertificate: group,
      require: 'encrypt',
      issued: now,
    });
    const cn = new X509Certificate(Buffer.from(ca.certificate)).subject.replace(/^CN=/, '');
    expect(profile.udf).toBe(cn);
    const verified = verifyProfile(signProfile(profile, ca.secret), {
      expectedAddress: 'dave@example.org',
      expectedUdf: cn,
      now,
    });
    expect(Buffer.compare(Buffer.from(verified.groupCertificate), Buffer.from(group))).toBe(0);
    expect(Buffer.compare(Buffer.from(verified.ownerSpki), Buffer.from(caSpki))).toBe(0);
    expect(smimeaRecord('dave@example.org', group).data).toBe(Buffer.from(group).toString('hex'));
  });
});
