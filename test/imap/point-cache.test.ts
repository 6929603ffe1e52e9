/**
 * The persistent point cache on a real SQLite file: plans survive a restart, a damaged
 * entry is ignored (and deleted) rather than served, an entry made with other keys or for
 * another device is never served, and forgetting a device or an account drops exactly
 * its entries. The plans kept decoded in memory obey the same rules; the tests of the
 * file itself turn them off (`fileOnly`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { PlanKey, SettledPlan } from '../../src/imap/plan-cache.js';
import { decodePlan, encodePlan, keysFingerprint } from '../../src/imap/plan-codec.js';
import { DEFAULT_MAX_ENTRIES, PointCache, type PlanScope } from '../../src/imap/point-cache.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('point-cache-');
afterAll(() => dir.remove());

const key: PlanKey = { mailbox: 'INBOX', uidValidity: 7, uid: 42, section: 'BODY[]' };
const plan: SettledPlan = {
  kind: 'edits',
  edits: [
    { offset: 120, bytes: Uint8Array.from({ length: 65 }, (_, i) => (i * 7) & 0xff) },
    { offset: 300, bytes: Uint8Array.from({ length: 82 }, (_, i) => (i * 3) & 0xff) },
  ],
};

function scope(device: string, fp = Buffer.alloc(16, 1), owner = 'a@example.org'): PlanScope {
  return { owner, device, storeUser: owner, fingerprint: () => fp };
}

/** A cache without the in-memory plans: every read goes to the file. */
const fileOnly = (path: string): PointCache => new PointCache(path, DEFAULT_MAX_ENTRIES, 0);

let counter = 0;
function freshPath(): string {
  return join(dir.path, `points-${++counter}.sqlite`);
}

describe('point cache', () => {
  it('serves recent plans from memory, with the same key and key checks, and forgets them', () => {
    const path = freshPath();
    const cache = new PointCache(path, DEFAULT_MAX_ENTRIES, 2);
    cache.set(scope('dev-1'), key, plan);
    cache.set(scope('dev-2'), key, plan);
    cache.set(scope('dev-1', undefined, 'b@example.org'), key, plan);
    cache.flush();
    // With the file gone, only what is in memory can answer: the two latest plans.
    const raw = new Database(path);
    raw.exec('DROP TABLE plans');
    raw.close();
    const errorsBefore = cache.stats.errors;
    expect(cache.get(scope('dev-2'), key)).toEqual(plan);
    expect(cache.get(scope('dev-1', undefined, 'b@example.org'), key)).toEqual(plan);
    expect(cache.stats.errors).toBe(errorsBefore);
    // The oldest was dropped from memory (bounded): a file read, which fails: a miss.
    expect(cache.get(scope('dev-1'), key)).toBeUndefined();
    expect(cache.stats.errors).toBe(errorsBefore + 1);
    // Another device, another key, other keys (rotation) are never served from memory.
    expect(cache.get(scope('dev-3'), key)).toBeUndefined();
    expect(cache.get(scope('dev-2'), { ...key, uid: 43 })).toBeUndefined();
    // A revoked device, a removed account: gone from memory as well.
    cache.forgetDevice('a@example.org', 'dev-2');
    cache.forgetOwner('b@example.org');
    expect(cache.get(scope('dev-2'), key)).toBeUndefined();
    expect(cache.get(scope('dev-1', undefined, 'b@example.org'), key)).toBeUndefined();
    cache.set(scope('dev-4'), key, plan);
    expect(cache.get(scope('dev-4', Buffer.alloc(16, 9)), key)).toBeUndefined();
    cache.close();
  });

  it('encodes and decodes plans exactly, and rejects damaged encodings', () => {
    expect(decodePlan(encodePlan(plan))).toEqual(plan);
    const unchanged: SettledPlan = { kind: 'unchanged', reason: 'not-envelope' };
    expect(decodePlan(encodePlan(unchanged))).toEqual(unchanged);
    const bytes = encodePlan(plan);
    expect(decodePlan(bytes.subarray(0, bytes.length - 1))).toBeNull();
    expect(decodePlan(Buffer.concat([bytes, Buffer.of(0)]))).toBeNull();
    expect(decodePlan(Buffer.of(9, 0, 1))).toBeNull();
    expect(decodePlan(Buffer.alloc(0))).toBeNull();
  });

  it('serves a plan after a restart (same file), to the same device only', () => {
    const path = freshPath();
    const first = new PointCache(path);
    first.set(scope('dev-1'), key, plan);
    first.close();
    const again = new PointCache(path);
    expect(again.get(scope('dev-1'), key)).toEqual(plan);
    expect(again.get(scope('dev-2'), key)).toBeUndefined();
    expect(again.get(scope('dev-1', undefined, 'b@example.org'), key)).toBeUndefined();
    expect(again.get(scope('dev-1'), { ...key, uidValidity: 8 })).toBeUndefined();
    expect(again.stats.hits).toBe(1);
    again.close();
  });

  it('a file SQLite cannot read is made anew, not a failure to start', () => {
    const path = freshPath();
    writeFileSync(path, Buffer.alloc(8192, 0x5a));
    const errors: unknown[] = [];
    const cache = PointCache.openOrReset(path, (error) => errors.push(error));
    expect(errors).toHaveLength(1);
    expect(cache).not.toBeNull();
    cache!.set(scope('dev-1'), key, plan);
    cache!.close();
    const again = new PointCache(path);
    expect(again.get(scope('dev-1'), key)).toEqual(plan);
    again.close();
  });

  it('a failing database is a miss, never an exception on the fetch path', () => {
    const path = freshPath();
    const cache = fileOnly(path);
    cache.set(scope('dev-1'), key, plan);
    cache.flush();
    const raw = new Database(path);
    raw.exec('DROP TABLE plans');
    raw.close();
    expect(cache.get(scope('dev-1'), key)).toBeUndefined();
    expect(() => {
      cache.set(scope('dev-1'), { ...key, uid: 2 }, plan);
      cache.flush();
      cache.forgetDevice('a@example.org', 'dev-1');
      cache.clear();
    }).not.toThrow();
    expect(cache.stats.errors).toBeGreaterThanOrEqual(3);
    cache.close();
  });

  it('does not serve a plan made with other keys (rotation, re-key)', () => {
    const cache = new PointCache(freshPath());
    cache.set(scope('dev-1', Buffer.alloc(16, 1)), key, plan);
    expect(cache.get(scope('dev-1', Buffer.alloc(16, 2)), key)).toBeUndefined();
    expect(cache.stats.stale).toBe(1);
    cache.close();
  });

  it('ignores and deletes a damaged entry instead of serving it', () => {
    const path = freshPath();
    const cache = fileOnly(path);
    cache.set(scope('dev-1'), key, plan);
    cache.set(scope('dev-1'), { ...key, uid: 43 }, plan);
    cache.set(scope('dev-1'), { ...key, uid: 44 }, plan);
    cache.flush();
    const raw = new Database(path);
    // A flipped byte inside E′, a truncated plan, and a row moved to another message.
    const row = raw.prepare('SELECT entry FROM plans WHERE uid = 42').get() as { entry: Buffer };
    const flipped = Buffer.from(row.entry);
    const at = flipped.length - 30;
    flipped.writeUInt8(flipped.readUInt8(at) ^ 0x01, at);
    raw.prepare('UPDATE plans SET entry = ? WHERE uid = 42').run(flipped);
    raw.prepare('UPDATE plans SET entry = substr(entry, 1, 40) WHERE uid = 43').run();
    raw.prepare('UPDATE plans SET uid = 45 WHERE uid = 44').run();
    raw.close();
    expect(cache.get(scope('dev-1'), key)).toBeUndefined();
    expect(cache.get(scope('dev-1'), { ...key, uid: 43 })).toBeUndefined();
    expect(cache.get(scope('dev-1'), { ...key, uid: 45 })).toBeUndefined();
    expect(cache.stats.corrupt).toBe(3);
    expect(cache.stats.hits).toBe(0);
    expect(cache.size()).toBe(0);
    // Recomputed and kept again, it is served.
    cache.set(scope('dev-1'), key, plan);
    expect(cache.get(scope('dev-1'), key)).toEqual(plan);
    cache.close();
  });

  it('forgets one device, one account, or a list archive, and nothing else', () => {
    const cache = new PointCache(freshPath());
    cache.set(scope('dev-1'), key, plan);
    cache.set(scope('dev-2'), key, plan);
    cache.set(scope('dev-9', undefined, 'b@example.org'), key, plan);
    cache.set(
      { ...scope('dev-9', undefined, 'b@example.org'), storeUser: 'list@example.org' },
      key,
      plan,
    );
    cache.forgetDevice('a@example.org', 'dev-1');
    expect(cache.get(scope('dev-1'), key)).toBeUndefined();
    expect(cache.get(scope('dev-2'), key)).toEqual(plan);
    cache.forgetStoreUser('list@example.org');
    expect(cache.size()).toBe(2);
    cache.forgetOwner('a@example.org');
    expect(cache.get(scope('dev-2'), key)).toBeUndefined();
    expect(cache.get(scope('dev-9', undefined, 'b@example.org'), key)).toEqual(plan);
    cache.clear();
    expect(cache.size()).toBe(0);
    cache.close();
  });

  it('peek answers from memory only, with the same key checks', () => {
    const path = freshPath();
    const writer = new PointCache(path);
    writer.set(scope('dev-1'), key, plan);
    writer.close();
    const cache = new PointCache(path);
    expect(cache.peek(scope('dev-1'), key)).toBeUndefined();
    expect(cache.get(scope('dev-1'), key)).toEqual(plan);
    expect(cache.peek(scope('dev-1'), key)).toEqual(plan);
    expect(cache.peek(scope('dev-1', Buffer.alloc(16, 9)), key)).toBeUndefined();
    expect(cache.peek(scope('dev-2'), key)).toBeUndefined();
    cache.forgetDevice('a@example.org', 'dev-1');
    expect(cache.peek(scope('dev-1'), key)).toBeUndefined();
    cache.close();
  });

  it('keeps a plan made at delivery in memory only (its table is delivered-plans.ts)', () => {
    const cache = new PointCache(freshPath());
    const delivered: SettledPlan = { ...plan, delivered: true };
    cache.set(scope('dev-1'), key, delivered);
    cache.set(scope('dev-1'), { ...key, uid: 43 }, plan);
    expect(cache.get(scope('dev-1'), key)).toEqual(delivered);
    expect(cache.get(scope('dev-1', Buffer.alloc(16, 9)), key)).toBeUndefined();
    expect(cache.get(scope('dev-2'), key)).toBeUndefined();
    // Only the plan the proxy made itself was written.
    expect(cache.size()).toBe(1);
    cache.set(scope('dev-1'), key, delivered);
    cache.forgetDevice('a@example.org', 'dev-1');
    expect(cache.get(scope('dev-1'), key)).toBeUndefined();
    cache.close();
  });

  it('stays within its bound', () => {
    const cache = new PointCache(freshPath(), 100);
    for (let uid = 1; uid <= 10_050; uid++) cache.set(scope('dev-1'), { ...key, uid }, plan);
    cache.flush();
    expect(cache.size()).toBeLessThanOrEqual(100);
    expect(cache.get(scope('dev-1'), { ...key, uid: 10_050 })).toEqual(plan);
    cache.close();
  });

  it('fingerprints change with any key, the device id or the wrap encoding', () => {
    const base = {
      deviceId: Uint8Array.of(1, 2, 3),
      wrapEncoding: 'absent' as const,
      keys: new Map([['aa', 5n]]),
    };
    const fp = keysFingerprint(base);
    expect(keysFingerprint({ ...base, keys: new Map([['aa', 6n]]) }).equals(fp)).toBe(false);
    expect(keysFingerprint({ ...base, deviceId: Uint8Array.of(1, 2, 4) }).equals(fp)).toBe(false);
    expect(keysFingerprint({ ...base, wrapEncoding: 'null' }).equals(fp)).toBe(false);
    expect(keysFingerprint({ ...base, keys: new Map([['aa', 5n]]) }).equals(fp)).toBe(true);
  });
});
