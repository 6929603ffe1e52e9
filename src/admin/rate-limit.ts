/**
 * A token bucket per client IP for the public listener's unauthenticated routes
 * (enrolment, remote list joins, profile fetches; docs/admin-api.md). Anyone on the
 * internet can call them, and each costs a key-store read or a certificate check.
 * The client IP is the TCP peer, or the client a trusted balancer names in a PROXY
 * protocol header (src/net/proxy-listener.ts); an HTTP reverse proxy in front makes
 * every client one IP, so give the limit room there (docs/deployment.md).
 */

export interface RateLimitSettings {
  /** Tokens added per minute (the sustained rate). */
  perMinute: number;
  /** Bucket size: requests allowed at once after a quiet spell. */
  burst: number;
}

export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface RateLimiter {
  /** Takes one token for `key`; when none is left, the seconds until one is. */
  take(key: string): RateVerdict | Promise<RateVerdict>;
}

/** This process's buckets (shared-rate-limit.ts shares them through Redis). */
export interface LocalRateLimiter extends RateLimiter {
  take(key: string): RateVerdict;
}

/** Past this many tracked clients the least recently seen ones are forgotten (a full bucket). */
const MAX_TRACKED = 10_000;

export function createRateLimiter(
  settings: RateLimitSettings,
  clock: () => number = Date.now,
): LocalRateLimiter {
  const perMs = settings.perMinute / 60_000;
  // Map order is insertion order: re-inserting on every take keeps the oldest first.
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key) {
      const now = clock();
      const previous = buckets.get(key);
      let tokens = settings.burst;
      if (previous !== undefined) {
        buckets.delete(key);
        // A clock that went back refills nothing (and takes nothing away), as in Redis.
        tokens = Math.min(settings.burst, previous.tokens + Math.max(0, now - previous.at) * perMs);
      } else if (buckets.size >= MAX_TRACKED) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      if (tokens >= 1) {
        buckets.set(key, { tokens: tokens - 1, at: now });
        return { allowed: true };
      }
      buckets.set(key, { tokens, at: now });
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)),
      };
    },
  };
}
