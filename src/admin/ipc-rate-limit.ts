/**
 * The token buckets of rate-limit.ts shared by the processes of one gateway without
 * Redis (the SQLite key store, config `processes` > 1; docs/deployment.md "Several
 * processes on one machine"): the primary keeps every bucket (`RateLimitHolder`), the
 * workers take from them over cluster IPC (`askingRateLimiter`), so N workers do not give
 * a client N times the rate. When the primary does not answer in time, this process's own
 * bucket decides, as when Redis does not answer (shared-rate-limit.ts).
 */
import {
  createRateLimiter,
  type LocalRateLimiter,
  type RateLimiter,
  type RateLimitSettings,
  type RateVerdict,
} from './rate-limit.js';

export interface RateTakeQuestion {
  kind: 'rate-take';
  scope: string;
  settings: RateLimitSettings;
  key: string;
}

/** Takes from the buckets another process holds, through `ask` (which rejects without an answer). */
export function askingRateLimiter(
  ask: (question: RateTakeQuestion) => Promise<unknown>,
  options: { scope: string; settings: RateLimitSettings; onError?: (error: unknown) => void },
): RateLimiter {
  const { scope, settings } = options;
  const local = createRateLimiter(settings);
  return {
    async take(key): Promise<RateVerdict> {
      try {
        const answer = (await ask({ kind: 'rate-take', scope, settings, key })) as {
          verdict?: RateVerdict;
        };
        const verdict = answer.verdict;
        if (verdict?.allowed === true) return { allowed: true };
        if (verdict?.allowed === false && Number.isSafeInteger(verdict.retryAfterSeconds))
          return { allowed: false, retryAfterSeconds: verdict.retryAfterSeconds };
        throw new Error('malformed rate limit verdict');
      } catch (error) {
        options.onError?.(error);
        return local.take(key);
      }
    },
  };
}

/** Bounds the scopes a worker can make the primary keep (the gateway has two: admin, submission). */
const MAX_SCOPES = 16;

/** The buckets of every scope, in the process the others ask (the primary). */
export class RateLimitHolder {
  readonly #scopes = new Map<string, { settings: RateLimitSettings; limiter: LocalRateLimiter }>();

  take(question: RateTakeQuestion): RateVerdict {
    const { scope, settings } = question;
    let held = this.#scopes.get(scope);
    // A worker started with other settings (a restart after a config change) gets a fresh
    // bucket set with them: the settings of the config the workers run now apply.
    if (
      held === undefined ||
      held.settings.perMinute !== settings.perMinute ||
      held.settings.burst !== settings.burst
    ) {
      if (held === undefined && this.#scopes.size >= MAX_SCOPES)
        throw new Error('too many rate limit scopes');
      held = { settings: { ...settings }, limiter: createRateLimiter(settings) };
      this.#scopes.set(scope, held);
    }
    return held.limiter.take(question.key);
  }
}
