/**
 * One contract, two held-post stores: the data directory (embedded, one process) and Redis
 * (every gateway process on it, a real redis-server). Two handles on one store stand for
 * two processes: what one holds the other lists, reads and removes.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileHeldPostStore, HeldPostIdError } from '../../src/lists/held-posts.js';
import type { HeldPostStore } from '../../src/lists/ports.js';
import { RedisHeldPostStore } from '../../src/lists/redis-held-posts.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { tempDir } from '../helpers/tmp.js';

let redis: RedisServer;
const clients: Redis[] = [];
const cleanup: Array<() => void> = [];
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(() => {
  for (const step of cleanup.splice(0)) step();
});
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await redis.dispose();
});

const kinds: Record<string, (clock: () => number) => [HeldPostStore, HeldPostStore]> = {
  file: (clock) => {
    const dir = tempDir('recrypt-held-contract-');
    cleanup.push(dir.remove);
    return [
      new FileHeldPostStore({ dataDir: dir.path, clock }),
      new FileHeldPostStore({ dataDir: dir.path, clock }),
    ];
  },
  redis: (clock) => {
    const prefix = `held${++prefixes}:`;
    const open = () => {
      const client = new Redis(redis.url);
      clients.push(client);
      return new RedisHeldPostStore({ client, prefix, clock });
    };
    return [open(), open()];
  },
};

const post = (n: number) => Buffer.from(`MIME-Version: 1.0\r\n\r\nS/MIME bytes ${n}\r\n`);

describe.each(Object.keys(kinds))('held post store contract: %s', (kind) => {
  it('a post held through one handle is listed, read and removed through the other', async () => {
    const [a, b] = kinds[kind]!(() => 1_700_000_000_000);
    const held = await a.hold(' Team@Home.test ', 'poster@else.test', post(1));
    expect(held).toMatchObject({
      list: 'team@home.test',
      mailFrom: 'poster@else.test',
      bytes: post(1).length,
      received: 1_700_000_000_000,
    });
    expect(held.id).toMatch(/^[0-9a-f]{32}$/);
    expect(await b.list('team@home.test')).toEqual([held]);
    const got = await b.get('TEAM@home.test', held.id);
    expect(got?.post).toEqual(held);
    expect(got?.message.equals(post(1))).toBe(true);
    expect(await b.list('other@home.test')).toEqual([]);
    await b.remove('team@home.test', held.id);
    expect(await a.list('team@home.test')).toEqual([]);
    expect(await a.get('team@home.test', held.id)).toBeNull();
    await a.remove('team@home.test', held.id);
  });

  it('lists oldest first, posts of one millisecond in the order held', async () => {
    let now = 5000;
    const [a, b] = kinds[kind]!(() => now);
    const first = await a.hold('l@h.test', '', post(1));
    const second = await a.hold('l@h.test', '', post(2));
    now = 4000;
    const earlier = await a.hold('l@h.test', 'x@y.test', post(3));
    expect((await b.list('l@h.test')).map((p) => p.id)).toEqual([earlier.id, first.id, second.id]);
  });

  it('refuses malformed ids without touching anything', async () => {
    const [a] = kinds[kind]!(Date.now);
    await expect(a.get('l@h.test', '../../etc/passwd')).rejects.toThrow(HeldPostIdError);
    await expect(a.remove('l@h.test', 'x')).rejects.toThrow(HeldPostIdError);
  });

  it('claims: one process moderates a post at a time (shared stores only)', async () => {
    const [a, b] = kinds[kind]!(Date.now);
    const held = await a.hold('l@h.test', 'p@q.test', post(4));
    // The directory is one process's: it has nothing to claim (the admin server's own
    // in-process guard covers it).
    expect(a.claim === undefined).toBe(kind === 'file');
    if (a.claim === undefined || b.claim === undefined) return;
    const release = await a.claim('l@h.test', held.id, 60_000);
    expect(release).not.toBeNull();
    expect(await b.claim('l@h.test', held.id, 60_000)).toBeNull();
    await release!();
    const again = await b.claim('l@h.test', held.id, 60_000);
    expect(again).not.toBeNull();
    await again!();
  });
});

describe('held posts in Redis: damaged entries', () => {
  it('a record whose bytes are missing or changed is skipped, not served', async () => {
    const prefix = `held${++prefixes}:`;
    const client = new Redis(redis.url);
    clients.push(client);
    const store = new RedisHeldPostStore({ client, prefix });
    const kept = await store.hold('l@h.test', '', post(5));
    const changed = await store.hold('l@h.test', '', post(6));
    const gone = await store.hold('l@h.test', '', post(7));
    await client.hset(`${prefix}{l:l@h.test}:held-msg`, changed.id, post(8));
    await client.hdel(`${prefix}{l:l@h.test}:held-msg`, gone.id);
    await client.hset(`${prefix}{l:l@h.test}:held`, 'f'.repeat(32), '{not json');
    expect((await store.list('l@h.test')).map((p) => p.id)).toEqual([kept.id, changed.id]);
    expect(await store.get('l@h.test', changed.id)).toBeNull();
    expect(await store.get('l@h.test', gone.id)).toBeNull();
    expect(await store.get('l@h.test', 'f'.repeat(32))).toBeNull();
  });
});
