/**
 * Key discovery for a recipient on another server (docs/sending.md "Which key"): the
 * ProfileMailPublic published at https://<domain>/.well-known/mail-profile/<address>,
 * fetched and verified by src/profiles (ES256 signature, the UDF of the signing key, the
 * address asked for, validity, the group certificate issued by the owner key). A profile
 * that fails any check is no key at all. Answers (keys and misses) are cached per address
 * until `cacheTtl` passes, or the profile or certificate expires first; the cache is
 * bounded (oldest dropped first).
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import {
  fetchProfile,
  parseAddress,
  ProfileError,
  ProfileFetchError,
  type FetchedProfile,
} from '../profiles/index.js';
import type { KeyAnswer, KeySource } from './key-sources.js';

/** What the profile source answers (key-sources.ts): `provenance` is the profile's URL. */
export type Discovered = KeyAnswer;

const MISS_TTL_MS = 5 * 60_000;

export interface KeyDiscoveryOptions {
  /** Per-domain origin overriding https://<domain> (config `submission.discovery.origins`). */
  origins?: Record<string, string>;
  /** Extra trust anchors (PEM). */
  ca?: string;
  cacheTtlMs: number;
  timeoutMs: number;
  logger?: Logger;
  now?: () => number;
  /** Addresses cached at once. */
  maxEntries?: number;
}

/** The published-profile key source (the first remote one, key-sources.ts). */
export function keyDiscovery(options: KeyDiscoveryOptions): KeySource {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, Discovered>();
  const inFlight = new Map<string, Promise<Discovered>>();
  const origins = new Map(
    Object.entries(options.origins ?? {}).map(([domain, origin]) => [domain.toLowerCase(), origin]),
  );

  const fetchOnce = async (address: string): Promise<Discovered> => {
    const until = (ms: number) => new Date(Math.min(ms, now() + options.cacheTtlMs));
    // A miss is asked again sooner: the owner may be publishing right now.
    const miss = () => until(now() + MISS_TTL_MS);
    let domain: string;
    try {
      domain = parseAddress(address).domain;
    } catch {
      return { kind: 'none', reason: 'not an address a profile can exist for', validUntil: miss() };
    }
    const baseUrl = origins.get(domain);
    let fetched: FetchedProfile;
    try {
      fetched = await fetchProfile(address, {
        ...(baseUrl === undefined ? {} : { baseUrl }),
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        timeoutMs: options.timeoutMs,
        now: new Date(now()),
      });
    } catch (error) {
      const reason =
        error instanceof ProfileError
          ? `profile rejected: ${error.message}`
          : error instanceof ProfileFetchError
            ? error.code === 'not-found'
              ? 'no profile published'
              : `profile not fetched: ${error.message}`
            : 'profile not fetched';
      if (error instanceof ProfileError)
        options.logger?.warn({ rcpt: address, reason }, 'published profile failed verification');
      return { kind: 'none', reason, validUntil: miss() };
    }
    const connection = fetched.profile.connection[0]!;
    const profileExpires =
      fetched.profile.expires === undefined ? Infinity : Date.parse(fetched.profile.expires);
    let certificateExpires: number;
    try {
      certificateExpires = Date.parse(new X509Certificate(fetched.groupCertificate).validTo);
    } catch {
      return {
        kind: 'none',
        reason: 'profile rejected: unreadable certificate',
        validUntil: miss(),
      };
    }
    const requireEncryption = connection.require.includes('encrypt');
    // The profile itself verified: its wish stands even though its key cannot be used.
    if (certificateExpires <= now())
      return {
        kind: 'none',
        reason: 'profile rejected: certificate expired',
        validUntil: miss(),
        ...(requireEncryption ? { requireEncryption } : {}),
      };
    return {
      kind: 'key',
      source: 'profile',
      certificate: fetched.groupCertificate,
      provenance: fetched.url,
      udf: fetched.profile.udf,
      validUntil: until(Math.min(profileExpires, certificateExpires)),
      requireEncryption,
    };
  };

  return {
    name: 'profile',
    async lookup(raw) {
      const address = raw.trim().toLowerCase();
      const cached = cache.get(address);
      if (cached !== undefined && cached.validUntil.getTime() > now()) return cached;
      cache.delete(address);
      let pending = inFlight.get(address);
      if (pending === undefined) {
        pending = fetchOnce(address).finally(() => inFlight.delete(address));
        inFlight.set(address, pending);
      }
      const result = await pending;
      cache.set(address, result);
      while (cache.size > maxEntries) {
        const oldest = cache.keys().next().value;
        if (oldest === undefined) break;
        cache.delete(oldest);
      }
      return result;
    },
  };
}
