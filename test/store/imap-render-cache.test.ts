import { describe, expect, it } from 'vitest';
import { RenderCache } from '../../src/store/imap/render/cache.js';

describe('IMAP render cache', () => {
  it('stays within its byte budget, evicting least recently used entries first', () => {
    const cache = new RenderCache(10_000);
    const value = 'x'.repeat(400);
    for (let uid = 1; uid <= 100; uid++)
      cache.set(RenderCache.key('alice', 'INBOX', 7, uid), 'ENVELOPE', value);
    expect(cache.size.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size.entries).toBeGreaterThan(0);
    expect(cache.get(RenderCache.key('alice', 'INBOX', 7, 1))).toBeUndefined();
    expect(cache.get(RenderCache.key('alice', 'INBOX', 7, 100))?.ENVELOPE).toBe(value);
  });

  it('keys by user, mailbox, UIDVALIDITY and UID, so a re-created mailbox never sees old entries', () => {
    const cache = new RenderCache(1 << 20);
    cache.set(RenderCache.key('alice', 'INBOX', 7, 1), 'BODY', '("text" "plain")');
    expect(cache.get(RenderCache.key('alice', 'INBOX', 8, 1))).toBeUndefined();
    expect(cache.get(RenderCache.key('bob', 'INBOX', 7, 1))).toBeUndefined();
    expect(cache.get(RenderCache.key('alice', 'INBOX', 7, 1))?.BODY).toBe('("text" "plain")');
  });

  it('stores nothing when disabled', () => {
    const cache = new RenderCache(0);
    cache.set(RenderCache.key('alice', 'INBOX', 7, 1), 'header', new Uint8Array(10));
    expect(cache.size).toEqual({ entries: 0, bytes: 0 });
  });
});
