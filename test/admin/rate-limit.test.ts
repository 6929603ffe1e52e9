/**
 * The public listener's per-IP token bucket (src/admin/rate-limit.ts), on a clock the
 * test moves: the burst, the refill, the Retry-After it reports, and that one client's
 * empty bucket leaves another's alone.
 */
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/admin/rate-limit.js';

describe('per-client token bucket', () => {
  it('allows the burst, then refuses with the seconds until the next token', () => {
    let now = 1_000_000;
    const limiter = createRateLimiter({ perMinute: 6, burst: 3 }, () => now);
    for (let i = 0; i < 3; i++) expect(limiter.take('192.0.2.1')).toEqual({ allowed: true });
    // 6 a minute: one token every 10 s.
    expect(limiter.take('192.0.2.1')).toEqual({ allowed: false, retryAfterSeconds: 10 });
    now += 4_000;
    expect(limiter.take('192.0.2.1')).toEqual({ allowed: false, retryAfterSeconds: 6 });
    now += 6_000;
    expect(limiter.take('192.0.2.1')).toEqual({ allowed: true });
    expect(limiter.take('192.0.2.1').allowed).toBe(false);
  });

  it('keeps one bucket per client', () => {
    const limiter = createRateLimiter({ perMinute: 1, burst: 1 }, () => 0);
    expect(limiter.take('192.0.2.1').allowed).toBe(true);
    expect(limiter.take('192.0.2.1').allowed).toBe(false);
    expect(limiter.take('2001:db8::1').allowed).toBe(true);
  });

  it('refills to the burst and no further after a quiet spell', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 60, burst: 2 }, () => now);
    expect(limiter.take('a').allowed).toBe(true);
    now += 3_600_000;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  it('a clock that goes back takes no tokens away', () => {
    let now = 2 * 86_400_000;
    const limiter = createRateLimiter({ perMinute: 1, burst: 2 }, () => now);
    expect(limiter.take('a').allowed).toBe(true);
    now = 0;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  it('stays bounded under many addresses: the least recently seen are forgotten', () => {
    const limiter = createRateLimiter({ perMinute: 1, burst: 1 }, () => 0);
    expect(limiter.take('first').allowed).toBe(true);
    expect(limiter.take('first').allowed).toBe(false);
    for (let i = 0; i < 10_000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    // Forgotten means a full bucket again: a flood of sources costs memory, not accuracy
    // for the clients still being tracked.
    expect(limiter.take('first').allowed).toBe(true);
  });
});
