/**
 * The owner's mail profile: build and sign it with the owner key (on this machine), and
 * publish it through the admin API; fetch and verify anyone's profile; the SMIMEA record
 * of anyone's group certificate, as the gateway's public endpoint serves it.
 */
import {
  ProfileError,
  ProfileFetchError,
  buildProfile,
  fetchProfile,
  profilePath,
  signProfile,
  smimeaRecord,
  type FetchedProfile,
  type SmimeaRecord,
} from '../profiles/index.js';
import { publicPoint } from '../recrypt/index.js';
import { checkAddress, ownerClient } from './common.js';
import { OwnerError } from './errors.js';
import { callGateway, parseGatewayUrl, sendRaw } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';
import { policyToPublish, type SendingPolicy } from './policy.js';

/**
 * Signs a fresh profile (issued now) with the owner key and publishes it. Returns the JWS.
 * The policy (`prefer`, `require`) is the given one, the rest from the published profile
 * (policy.ts): republishing never drops a `require: encrypt` the owner set.
 */
export async function publishProfile(
  key: OwnerKey,
  options: { name?: string; now?: Date; policy?: Partial<SendingPolicy> } = {},
): Promise<string> {
  const client = ownerClient(key);
  const given =
    options.name ?? (await callGateway<{ name?: string }>(client, 'GET', '/v1/owner')).name;
  // An account added without --name has an empty display name; a profile needs one.
  const name = given !== undefined && given.trim() !== '' ? given : key.address;
  const policy = await policyToPublish(key, options.policy);
  const profile = buildProfile({
    address: key.address,
    name,
    ownerPublicKey: publicPoint(key.ownerCaSecret),
    groupCertificate: key.groupCertificate,
    prefer: policy.prefer,
    require: policy.require,
    issued: options.now ?? new Date(),
  });
  const jws = signProfile(profile, key.ownerCaSecret);
  await callGateway(client, 'PUT', '/v1/owner/profile', { profile: jws });
  return jws;
}

export interface PublicLookup {
  /** Origin serving /.well-known/mail-profile/ (default https://<domain of the address>). */
  gateway?: string;
  ca?: string | null;
}

function lookupError(error: unknown, address: string): never {
  if (error instanceof ProfileFetchError) {
    if (error.code === 'not-found')
      throw new OwnerError('gateway-refused', `no profile published for ${address}`, 404);
    if (error.code === 'http-status')
      throw new OwnerError(
        'gateway-refused',
        `the profile server refused: ${error.message}`,
        error.status,
      );
    throw new OwnerError(
      'gateway-unreachable',
      `cannot fetch the profile of ${address}: ${error.message}`,
    );
  }
  if (error instanceof ProfileError)
    throw new OwnerError(
      'invalid-argument',
      `the profile of ${address} does not verify: ${error.message}`,
    );
  throw error;
}

/** Fetches and verifies (signature, UDF, address, validity) an address's profile. */
export async function showProfile(
  address: string,
  lookup: PublicLookup = {},
): Promise<FetchedProfile> {
  const checked = checkAddress(address);
  if (lookup.gateway !== undefined) parseGatewayUrl(lookup.gateway);
  try {
    return await fetchProfile(checked, {
      ...(lookup.gateway === undefined ? {} : { baseUrl: lookup.gateway }),
      ...(lookup.ca ? { ca: lookup.ca } : {}),
    });
  } catch (error) {
    return lookupError(error, checked);
  }
}

/** The RFC 8162 SMIMEA record for the group certificate the gateway publishes for `address`. */
export async function smimeaFor(address: string, lookup: PublicLookup = {}): Promise<SmimeaRecord> {
  const checked = checkAddress(address);
  const gateway = lookup.gateway ?? `https://${checked.slice(checked.lastIndexOf('@') + 1)}`;
  const reply = await sendRaw(
    { gateway, ca: lookup.ca ?? null, auth: { kind: 'none' } },
    'GET',
    `${profilePath(checked)}/group.cer`,
  );
  if (reply.status === 404)
    throw new OwnerError('gateway-refused', `no group certificate published for ${checked}`, 404);
  if (reply.status !== 200)
    throw new OwnerError(
      'gateway-refused',
      `the gateway refused: HTTP ${reply.status}`,
      reply.status,
    );
  try {
    return smimeaRecord(checked, new Uint8Array(reply.body));
  } catch (error) {
    throw new OwnerError(
      'gateway-refused',
      `the gateway's group certificate for ${checked} is unusable: ${(error as Error).message}`,
    );
  }
}
