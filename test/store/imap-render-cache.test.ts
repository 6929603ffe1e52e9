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

  it('keeps a header given as a slice of a larger buffer (a read slab, a whole message) in a copy of its own', () => {
    const cache = new RenderCache(1 << 20);
    const slab = Buffer.alloc(512 * 1024, 0x41);
    const header = slab.subarray(1000, 1100);
    cache.set(RenderCache.key('alice', 'INBOX', 7, 1), 'header', header);
    const kept = cache.get(RenderCache.key('alice', 'INBOX', 7, 1))?.header;
    expect(kept && Buffer.from(kept).equals(header)).toBe(true);
    expect(kept?.buffer.byteLength).toBe(100);
    // a buffer of its own is kept as it is
    const own = new Uint8Array(50);
    cache.set(RenderCache.key('alice', 'INBOX', 7, 2), 'header', own);
    expect(cache.get(RenderCache.key('alice', 'INBOX', 7, 2))?.header).toBe(own);
  });

  it('stores nothing when disabled', () => {
    const cache = new RenderCache(0);
    cache.set(RenderCache.key('alice', 'INBOX', 7, 1), 'header', new Uint8Array(10));
    expect(cache.size).toEqual({ entries: 0, bytes: 0 });
  });
});
