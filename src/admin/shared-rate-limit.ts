/**
 * The token buckets of rate-limit.ts in Redis, when it is the key store: every gateway
 * process takes from the same bucket, so N processes behind a balancer do not give a
 * client N times the rate (docs/deployment.md "Several gateway processes"). One hash per
 * scope and client, `<p>rate:<scope>:<digest>`, holding the tokens left and when; the
 * refill and the take are one script, timed by the Redis server's clock so that the
 * processes' clocks need not agree. A bucket is forgotten once it would be full again.
 * When Redis does not answer, this process's own bucket decides (the limit stays, only
 * per process).
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../keystore/redis/connect.js';
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimitSettings,
  type RateVerdict,
} from './rate-limit.js';

const TAKE = `
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local perMs = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if state[1] then
  tokens = math.min(burst, tonumber(state[1]) + math.max(0, nowMs - tonumber(state[2])) * perMs)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(nowMs))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / perMs) + 1000)
return {allowed, tostring(tokens)}
`;

export function redisRateLimiter(
  client: RedisClient,
  options: {
    prefix: string;
    /** Which limit: each scope has buckets of its own (`admin`, `submission`). */
    scope: string;
    settings: RateLimitSettings;
    onError?: (error: unknown) => void;
  },
): RateLimiter {
  const { prefix, scope, settings } = options;
  const perMs = settings.perMinute / 60_000;
  const local = createRateLimiter(settings);
  // A digest keeps addresses out of the key space and bounds the key length.
  const key = (name: string) =>
    `${prefix}rate:${scope}:${createHash('sha256').update(name).digest('base64url')}`;
  return {
    async take(name): Promise<RateVerdict> {
      try {
        const [allowed, left] = (await client.eval(
          TAKE,
          1,
          key(name),
          String(perMs),
          String(settings.burst),
        )) as [number, string];
        if (allowed === 1) return { allowed: true };
        const tokens = Number(left);
        return {
          allowed: false,
          retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)),
        };
      } catch (error) {
        options.onError?.(error);
        return local.take(name);
      }
    },
  };
}
