/**
 * How submission reads the sender's own policy from the stored profile
 * (src/submission/sender-policy.ts), with profiles signed by the owner key of
 * test/vectors/profiles: `require: encrypt` (or `sign-encrypt`) refuses keyless
 * recipients, `none` or no profile does not, and a stored profile that does not verify
 * (bad signature, another address, expired) counts as requiring encryption. A key store
 * that fails is 451 4.3.0, never a guess. The end-to-end path: policy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { signProfile, type MailPolicy } from '../../src/profiles/index.js';
import { SmtpReply } from '../../src/smtp/reply.js';
import {
  senderPolicy,
  senderRequiresEncryption,
  type PublishedProfiles,
} from '../../src/submission/sender-policy.js';
import {
  loadProfileVector,
  vectorJson,
  vectorSecret,
  type ValidVector,
} from '../helpers/profiles-vectors.js';

const valid = vectorJson<ValidVector>('valid.json');
const now = new Date(valid.now);
const ownerSecret = vectorSecret('owner-key.pem');

function signedWith(require: MailPolicy): string {
  const profile = loadProfileVector();
  return signProfile(
    { ...profile, connection: profile.connection.map((c) => ({ ...c, require })) },
    ownerSecret,
  );
}

/** The key store's one published profile, stored under `address`. */
const storeOf = (address: string, document: string | null): PublishedProfiles => ({
  getProfile: async (asked) => (asked === address ? document : null),
});

describe("the sender's policy from the stored profile", () => {
  it('require encrypt or sign-encrypt: required; none or no profile: not', async () => {
    for (const [require, expected] of [
      ['encrypt', true],
      ['sign-encrypt', true],
      ['sign', false],
      ['none', false],
    ] as const) {
      const policy = await senderPolicy(
        storeOf(valid.address, signedWith(require)),
        valid.address,
        now,
      );
      expect(policy.requireEncryption, require).toBe(expected);
    }
    const none = await senderPolicy(storeOf(valid.address, null), valid.address, now);
    expect(none).toEqual({ requireEncryption: false, reason: 'no profile published' });
  });

  it('a stored profile that does not verify counts as requiring encryption', async () => {
    const good = signedWith('none');
    const [head, payload, signature] = good.split('.') as [string, string, string];
    const flipped = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
    const badSignature = `${head}.${payload}.${flipped}`;
    for (const [document, address, at] of [
      [badSignature, valid.address, now],
      [good, 'bob@example.org', now],
      [good, valid.address, new Date(valid.expiredAt)],
    ] as const) {
      const policy = await senderPolicy(storeOf(address, document), address, at);
      expect(policy.requireEncryption).toBe(true);
      expect(policy.reason).toMatch(/cannot be read .*treated as requiring encryption/);
    }
  });

  it('a failing key store is 451 4.3.0 at MAIL; without a profile store no policy applies', async () => {
    const failing: PublishedProfiles = {
      getProfile: () => Promise.reject(new Error('key store down')),
    };
    const refused = await senderRequiresEncryption(failing, valid.address).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(SmtpReply);
    expect(refused).toMatchObject({ responseCode: 451, enhancedCode: '4.3.0' });
    expect(await senderRequiresEncryption(undefined, valid.address)).toBe(false);
  });
});
