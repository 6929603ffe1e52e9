/**
 * Login backoff per client IP and per account: after a few failures each further
 * attempt waits twice as long as the one before (capped), for both right and wrong
 * passwords, so guessing is slow and the wait reveals nothing. Failures are forgotten
 * after a quiet window; a success clears the account's count. In memory, bounded.
 *
 * The account key is the caller's normalised account (the key store's normalisation:
 * `" bob@…"`, `"BOB@…\t"` and `"bob@…\u00a0"` are one account and one counter). The
 * delay alone does not stop many attempts at once from one IP (each reads the count
 * before any has failed), so attempts per IP are also serialised beyond
 * `maxConcurrentPerIp`: a further one waits for a slot, and its delay is read then.
 *
 * With `shared` (the Redis key store: src/imap/shared-throttle.ts) the failure counts are
 * also kept where every gateway process sees them, so an attacker spreading attempts over
 * N processes meets one count, not N. The delay is the larger of the local and the shared
 * one; a shared store that does not answer leaves the local count in force, unless the
 * store is `failClosed` (the counts the primary of several processes holds:
 * ipc-throttle.ts): then the login is refused for now (UNAVAILABLE), as when Redis is down.
 */
import { UnavailableError } from './errors.js';

export interface ThrottleOptions {
  /** Failures allowed before any delay (default 3). */
  freeFailures?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A key's failures are forgotten this long after its last failure (default 15 min). */
  windowMs?: number;
  maxKeys?: number;
  /** Logins checked at once from one IP; further ones queue (default 4). */
  maxConcurrentPerIp?: number;
  now?: () => number;
  /** Failure counts every gateway process shares (Redis); local counts still apply. */
  shared?: SharedLoginFailures;
  /** Where failures of the shared store go (a logger); they fail a login only if `failClosed`. */
  onSharedError?: (error: unknown) => void;
}

/** Failure counters shared by gateway processes; a key is `ip:<ip>` or `account:<address>`. */
export interface SharedLoginFailures {
  /** Each key's failures within the window (0 when none). */
  counts(keys: string[]): Promise<number[]>;
  /** Counts one failure for each key; a key is forgotten `windowMs` after its last failure. */
  record(keys: string[], windowMs: number): Promise<void>;
  clear(key: string): Promise<void>;
  /** Counts that cannot be read refuse the login (delayFor throws UnavailableError). */
  readonly failClosed?: boolean;
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
  private readonly maxConcurrentPerIp: number;
  private readonly now: () => number;
  private readonly slots = new Map<string, { busy: number; waiting: Array<() => void> }>();
  private readonly shared: SharedLoginFailures | undefined;
  private readonly onSharedError: (error: unknown) => void;

  constructor(options: ThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.maxKeys = options.maxKeys ?? 100_000;
    this.maxConcurrentPerIp = Math.max(1, options.maxConcurrentPerIp ?? 4);
    this.now = options.now ?? Date.now;
    this.shared = options.shared;
    this.onSharedError = options.onSharedError ?? (() => undefined);
  }

  /**
   * `delayMs`, counting every process's failures when the counts are shared. With
   * `failClosed`, throws UnavailableError when the shared counts cannot be read.
   */
  async delayFor(ip: string, account: string): Promise<number> {
    const local = this.delayMs(ip, account);
    if (this.shared === undefined) return local;
    try {
      const counts = await this.shared.counts([`ip:${ip}`, `account:${account}`]);
      return Math.max(local, ...counts.map((failures) => this.delayForCount(failures)));
    } catch (error) {
      this.onSharedError(error);
      if (this.shared.failClosed === true)
        throw new UnavailableError('shared login failure counts unavailable', { cause: error });
      return local;
    }
  }

  /** `recordFailure`, and the shared count (awaited: the next attempt anywhere sees it). */
  async recordFailureShared(ip: string, account: string): Promise<void> {
    this.recordFailure(ip, account);
    await this.shared
      ?.record([`ip:${ip}`, `account:${account}`], this.windowMs)
      .catch((error: unknown) => this.onSharedError(error));
  }

  /** `recordSuccess`, and the shared count. */
  async recordSuccessShared(account: string): Promise<void> {
    this.recordSuccess(account);
    await this.shared
      ?.clear(`account:${account}`)
      .catch((error: unknown) => this.onSharedError(error));
  }

  /**
   * A slot for one login check from `ip`; resolves with its release function once fewer
   * than `maxConcurrentPerIp` checks from that IP are running. Release exactly once.
   */
  async acquire(ip: string): Promise<() => void> {
    let entry = this.slots.get(ip);
    if (entry === undefined) {
      entry = { busy: 0, waiting: [] };
      this.slots.set(ip, entry);
    }
    const slot = entry;
    if (slot.busy >= this.maxConcurrentPerIp) {
      await new Promise<void>((resolve) => slot.waiting.push(resolve));
    } else {
      slot.busy++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = slot.waiting.shift();
      if (next !== undefined) next();
      else if (--slot.busy === 0) this.slots.delete(ip);
    };
  }

  /** Login checks running from `ip` (tests, metrics). */
  inProgress(ip: string): number {
    return this.slots.get(ip)?.busy ?? 0;
  }

  /** How long an attempt from `ip` for `account` must wait before it is checked. */
  delayMs(ip: string, account: string): number {
    return Math.max(this.delayOf(`ip:${ip}`), this.delayOf(`account:${account}`));
  }

  recordFailure(ip: string, account: string): void {
    for (const key of [`ip:${ip}`, `account:${account}`]) {
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
    this.entries.delete(`account:${account}`);
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
    return this.delayForCount(this.current(key)?.failures ?? 0);
  }

  private delayForCount(failures: number): number {
    if (failures < this.freeFailures) return 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (failures - this.freeFailures));
  }
}
