/**
 * Login failure counts shared by the processes of one gateway without Redis (the SQLite
 * key store, config `processes` > 1; docs/deployment.md "Several processes on one
 * machine"): the primary holds them in memory (`memoryLoginFailures`) and the workers ask
 * it over cluster IPC (`askingLoginFailures`), so failures spread over the workers meet
 * one count, as with Redis (shared-throttle.ts). A question the primary does not answer
 * in time rejects; the throttle then refuses the login for now (throttle.ts `failClosed`), as a
 * login fails while Redis is down: a primary that cannot answer must not turn the shared
 * count into one per worker.
 */
import type { SharedLoginFailures } from './throttle.js';

/** Past this many tracked IPs and accounts the least recently failed are forgotten. */
const MAX_KEYS = 100_000;

/** The counts in this process's memory, each forgotten `windowMs` after its last failure. */
export function memoryLoginFailures(
  options: { maxKeys?: number; now?: () => number } = {},
): SharedLoginFailures {
  const maxKeys = options.maxKeys ?? MAX_KEYS;
  const now = options.now ?? Date.now;
  // Map order is insertion order: re-inserting on every failure keeps the oldest first.
  const entries = new Map<string, { failures: number; expires: number }>();
  const current = (key: string) => {
    const entry = entries.get(key);
    if (entry !== undefined && now() >= entry.expires) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  return {
    counts: (keys) => Promise.resolve(keys.map((key) => current(key)?.failures ?? 0)),
    record(keys, windowMs) {
      for (const key of keys) {
        const failures = (current(key)?.failures ?? 0) + 1;
        entries.delete(key);
        entries.set(key, { failures, expires: now() + windowMs });
      }
      while (entries.size > maxKeys) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
      return Promise.resolve();
    },
    clear(key) {
      entries.delete(key);
      return Promise.resolve();
    },
  };
}

/** One question to the process holding the counts, and its answer. */
export type LoginFailuresQuestion =
  | { kind: 'login-counts'; keys: string[] }
  | { kind: 'login-record'; keys: string[]; windowMs: number }
  | { kind: 'login-clear'; key: string };

/** The counts another process holds, asked through `ask` (which rejects without an answer). */
export function askingLoginFailures(
  ask: (question: LoginFailuresQuestion) => Promise<unknown>,
): SharedLoginFailures {
  return {
    failClosed: true,
    async counts(keys) {
      const answer = (await ask({ kind: 'login-counts', keys })) as { counts?: unknown };
      const counts = answer.counts;
      if (
        !Array.isArray(counts) ||
        counts.length !== keys.length ||
        !counts.every((count) => Number.isSafeInteger(count))
      )
        throw new Error('malformed login failure counts');
      return counts as number[];
    },
    async record(keys, windowMs) {
      await ask({ kind: 'login-record', keys, windowMs });
    },
    async clear(key) {
      await ask({ kind: 'login-clear', key });
    },
  };
}

/** Answers a worker's question from the counts this process holds. */
export async function answerLoginFailures(
  counts: SharedLoginFailures,
  question: LoginFailuresQuestion,
): Promise<{ kind: 'login-counts'; counts: number[] } | { kind: 'done' }> {
  switch (question.kind) {
    case 'login-counts':
      return { kind: 'login-counts', counts: await counts.counts(question.keys) };
    case 'login-record':
      await counts.record(question.keys, question.windowMs);
      return { kind: 'done' };
    case 'login-clear':
      await counts.clear(question.key);
      return { kind: 'done' };
  }
}
