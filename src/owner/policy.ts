/**
 * The owner's sending policy: the `prefer` and `require` of their signed mail profile
 * (docs/profile.md). `require: encrypt` means "mail to me must be encrypted" to other
 * senders, and to this gateway's submission also "mail I send must be encrypted": a
 * recipient without a key is refused rather than sent as it is (docs/sending.md
 * "The sender's policy"). The policy lives only in the published profile, so everything
 * that republishes it (`profile publish`, `owner rotate`) reads the current one first and
 * keeps it.
 */
import { ProfileFetchError, fetchProfile, ownerUdf, type MailPolicy } from '../profiles/index.js';
import { publicPoint } from '../recrypt/index.js';
import { OwnerError } from './errors.js';
import type { OwnerKey, OwnerPublicInfo } from './key-file.js';

/** What `owner policy` sets: the gateway encrypts or does not; it never signs for a user. */
export const SETTABLE_POLICIES = ['none', 'encrypt'] as const satisfies readonly MailPolicy[];
export type SettablePolicy = (typeof SETTABLE_POLICIES)[number];

export interface SendingPolicy {
  prefer: MailPolicy;
  require: MailPolicy;
}

/** What a profile says when its owner never chose (profiles/profile.ts `buildProfile`). */
export const DEFAULT_POLICY: SendingPolicy = { prefer: 'encrypt', require: 'none' };

/**
 * The policy of the owner's published profile, fetched from their gateway and verified
 * (signature, address; with the owner key at hand also its UDF). null: none published yet.
 */
export async function publishedPolicy(
  info: OwnerPublicInfo | OwnerKey,
): Promise<SendingPolicy | null> {
  const expectedUdf =
    'ownerCaSecret' in info ? { expectedUdf: ownerUdf(publicPoint(info.ownerCaSecret)) } : {};
  try {
    const fetched = await fetchProfile(info.address, {
      baseUrl: info.gateway,
      ...(info.gatewayCa === null ? {} : { ca: info.gatewayCa }),
      ...expectedUdf,
    });
    const [connection] = fetched.profile.connection;
    return { prefer: connection!.prefer, require: connection!.require };
  } catch (error) {
    if (error instanceof ProfileFetchError && error.code === 'not-found') return null;
    const why = error instanceof ProfileFetchError ? 'cannot be fetched' : 'does not verify';
    throw new OwnerError(
      error instanceof ProfileFetchError ? 'gateway-unreachable' : 'invalid-argument',
      `your published profile ${why} (${(error as Error).message}), so its policy is unknown; ` +
        'set it explicitly: recrypt owner policy --require <none|encrypt> --prefer <none|encrypt>',
    );
  }
}

/** The policy a republished profile keeps: the given parts, the rest from the current one. */
export async function policyToPublish(
  key: OwnerKey,
  given: Partial<SendingPolicy> = {},
): Promise<SendingPolicy> {
  if (given.prefer !== undefined && given.require !== undefined)
    return { prefer: given.prefer, require: given.require };
  const current = (await publishedPolicy(key)) ?? DEFAULT_POLICY;
  return { prefer: given.prefer ?? current.prefer, require: given.require ?? current.require };
}
