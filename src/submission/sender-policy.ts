/**
 * The sender's own policy (docs/sending.md "The sender's policy"): a user whose published
 * profile says `require: encrypt` (set with `recrypt owner policy --require encrypt`)
 * wants no mail of theirs to leave unencrypted, so a recipient without a key is refused
 * for them as under `withoutKey: refuse`. Read from the key store's copy of the profile
 * (the one /.well-known/mail-profile/ serves; no HTTP), checked again here: the admin API
 * verified it against the enrolled owner key when it was published.
 *
 * A profile that is stored but cannot be read (it no longer verifies, e.g. expired) says
 * the owner once set a policy we can no longer see: it counts as requiring encryption,
 * so that a broken profile never turns a refusal into plaintext.
 */
import { verifyProfile } from '../profiles/index.js';
import { replies } from '../smtp/reply.js';

/** The key store's published profiles (KeyStore.getProfile). */
export interface PublishedProfiles {
  getProfile(address: string): Promise<string | null>;
}

export interface SenderPolicy {
  /** Recipients without a key are refused for this sender. */
  requireEncryption: boolean;
  /** Why, for logs and `recrypt lookup`. */
  reason: string;
}

/** Whether a profile policy value asks for encryption (`encrypt`, `sign-encrypt`). */
const asksForEncryption = (policy: string) => policy.includes('encrypt');

/** The policy of `address`'s own published profile. Throws when the key store does. */
export async function senderPolicy(
  profiles: PublishedProfiles,
  address: string,
  now: Date = new Date(),
): Promise<SenderPolicy> {
  const document = await profiles.getProfile(address);
  if (document === null) return { requireEncryption: false, reason: 'no profile published' };
  try {
    const { profile } = verifyProfile(document, { expectedAddress: address, now });
    const require = profile.connection.some((connection) => asksForEncryption(connection.require));
    return require
      ? { requireEncryption: true, reason: "the sender's profile requires encryption" }
      : { requireEncryption: false, reason: "the sender's profile does not require encryption" };
  } catch (error) {
    return {
      requireEncryption: true,
      reason: `the sender's published profile cannot be read (${(error as Error).message}); treated as requiring encryption`,
    };
  }
}

/**
 * At MAIL FROM: whether the authenticated user's own profile requires encryption; false
 * without a profile store. A key store failure is 451 4.3.0: the policy is never guessed.
 */
export async function senderRequiresEncryption(
  profiles: PublishedProfiles | undefined,
  address: string,
): Promise<boolean> {
  if (profiles === undefined) return false;
  try {
    return (await senderPolicy(profiles, address)).requireEncryption;
  } catch {
    throw replies.localError();
  }
}
