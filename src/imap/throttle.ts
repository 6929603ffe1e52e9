/**
 * Login backoff per client IP and per account: after a few failures each further
 * attempt waits twice as long as the one before (capped), for both right and wrong
 * passwords, so guessing is slow and the wait reveals nothing. Failures are forgotten
 * after a quiet window; a success clears the account's count. In memory, bounded.
 */
export interface ThrottleOptions {
  /** Failures allowed before any delay (default 3). */
  freeFailures?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A key's failures are forgotten this long after its last failure (default 15 min). */
  windowMs?: number;
  maxKeys?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  last: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly freeFailures: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: ThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.maxKeys = options.maxKeys ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** How long an attempt from `ip` for `account` must wait before it is checked. */
  delayMs(ip: string, account: string): number {
    return Math.max(this.delayOf(`ip:${ip}`), this.delayOf(`account:${account.toLowerCase()}`));
  }

  recordFailure(ip: string, account: string): void {
    for (const key of [`ip:${ip}`, `account:${account.toLowerCase()}`]) {
      const entry = this.current(key);
      this.entries.delete(key);
      this.entries.set(key, { failures: (entry?.failures ?? 0) + 1, last: this.now() });
    }
    while (this.entries.size > this.maxKeys) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  recordSuccess(account: string): void {
    this.entries.delete(`account:${account.toLowerCase()}`);
  }

  private current(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry !== undefined && this.now() - entry.last > this.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private delayOf(key: string): number {
    const failures = this.current(key)?.failures ?? 0;
    if (failures < this.freeFailures) return 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (failures - this.freeFailures));
  }
}
