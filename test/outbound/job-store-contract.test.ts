/**
 * One contract, two job stores: the queue directory (embedded, one process) and the Redis
 * queue (several processes, a real redis-server). The same steps run against both; where
 * they differ by design (claims mean something only when shared) the test says which.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../../src/outbound/job-store.js';
import { QueueStore, type NewJob } from '../../src/outbound/queue-store.js';
import { RedisQueueStore } from '../../src/outbound/redis-queue-store.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { tempDir } from '../helpers/tmp.js';

let redis: RedisServer;
const clients: Redis[] = [];
const cleanup: Array<() => void> = [];

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

let prefixes = 0;

/** Two handles on one store, as two gateway processes would have. */
const kinds: Record<string, () => Promise<[JobStore, JobStore]>> = {
  disk: async () => {
    const dir = tempDir('recrypt-jobstore-');
    cleanup.push(dir.remove);
    return [await QueueStore.open(dir.path), await QueueStore.open(dir.path)];
  },
  redis: async () => {
    const prefix = `contract${++prefixes}:`;
    const open = () => {
      const client = new Redis(redis.url);
      clients.push(client);
      return new RedisQueueStore({ client, prefix });
    };
    return [open(), open()];
  },
};

const job = (to: string, text = `Subject: ${to}\r\n\r\nciphertext stands here\r\n`): NewJob => ({
  mailFrom: 'list-bounces@home.test',
  to,
  message: Buffer.from(text),
  origin: { kind: 'list-post', list: 'team@home.test' },
});

async function bytesOf(store: JobStore, id: string): Promise<Buffer> {
  const source = await store.messageSource(id);
  if (Buffer.isBuffer(source)) return source;
  const { readFile } = await import('node:fs/promises');
  return readFile(source.path);
}

describe.each(Object.keys(kinds))('job store contract: %s', (kind) => {
  const open = kinds[kind]!;

  it('keeps a pending job whole: record, bytes, headers; another handle sees it', async () => {
    const [a, b] = await open();
    const [meta] = await a.write([job('m@remote.test')], 'pending', 1000);
    expect(await b.listPending()).toEqual([meta!.id]);
    const state = await b.read(meta!.id);
    expect(state).toEqual({ kind: 'ok', meta });
    expect((await bytesOf(b, meta!.id)).toString()).toContain('ciphertext stands here');
    expect((await b.readHeaders(meta!.id)).toString()).toBe('Subject: m@remote.test\r\n');
    expect(await b.countPending()).toBe(1);
  });

  it('prepared jobs are invisible until committed; commit is idempotent; aborted ones are gone', async () => {
    const [a, b] = await open();
    const kept = await a.write([job('k@remote.test')], 'prepared', 2000);
    const dropped = await a.write([job('d@remote.test')], 'prepared', 2000);
    expect(await b.listPending()).toEqual([]);
    await b.commit(kept.map((m) => m.id));
    await a.commit(kept.map((m) => m.id));
    await a.abort(dropped.map((m) => m.id));
    expect(await b.listPending()).toEqual(kept.map((m) => m.id));
    await expect(a.commit(dropped.map((m) => m.id))).rejects.toThrow(
      /neither prepared nor pending/,
    );
    expect((await b.read(kept[0]!.id)).kind).toBe('ok');
  });

  it('an attempt recorded by one handle is what the other reads; removal is seen by both', async () => {
    const [a, b] = await open();
    const [meta] = await a.write([job('u@remote.test')], 'pending', 3000);
    const next = { ...meta!, attempts: 1, lastError: '451 4.3.0 later', nextAttempt: 9000 };
    expect(await a.claim(meta!.id, 60_000)).toBe(true);
    await a.update(next);
    await a.release(meta!.id);
    expect(await b.read(meta!.id)).toEqual({ kind: 'ok', meta: next });
    await b.remove(meta!.id);
    expect(await a.read(meta!.id)).toEqual({ kind: 'missing' });
    expect(await a.listPending()).toEqual([]);
    await a.remove(meta!.id);
  });

  it('claims: exclusive when shared, renewable by the holder only, free again after release or expiry', async () => {
    const [a, b] = await open();
    const [meta] = await a.write([job('c@remote.test')], 'pending', 4000);
    const id = meta!.id;
    expect(await a.claim(id, 60_000)).toBe(true);
    // A store that is not shared has one process: nothing to exclude.
    expect(await b.claim(id, 60_000)).toBe(!a.shared);
    expect(await a.renew(id, 60_000)).toBe(true);
    if (a.shared) {
      expect(await b.renew(id, 60_000)).toBe(false);
      // Another process's outcome is not written over the holder's claim.
      await b.update({ ...meta!, attempts: 7, nextAttempt: 1 });
      expect((await a.read(id)).kind === 'ok' && (await a.read(id))).toMatchObject({
        meta: { attempts: 0 },
      });
    }
    await b.release(id);
    expect(await b.claim(id, 60_000)).toBe(!a.shared);
    await a.release(id);
    expect(await b.claim(id, 200)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    // b's short claim ran out (it "died"): a takes the job over.
    expect(await a.claim(id, 60_000)).toBe(true);
  });

  it('flush requests are taken once; makeAllDue brings shared schedules to now', async () => {
    const [a, b] = await open();
    expect(await b.takeFlushRequest()).toBe(false);
    await a.requestFlush();
    expect(await b.takeFlushRequest()).toBe(true);
    expect(await a.takeFlushRequest()).toBe(false);
    const [meta] = await a.write([job('f@remote.test')], 'pending', 5000);
    await a.update({ ...meta!, attempts: 1, nextAttempt: 99_000 });
    await b.makeAllDue(6000);
    const state = await a.read(meta!.id);
    expect(state.kind === 'ok' && state.meta.nextAttempt).toBe(a.shared ? 6000 : 99_000);
    if (a.schedule !== undefined) expect(await a.schedule()).toEqual(new Map([[meta!.id, 6000]]));
  });

  it('stale uncommitted jobs are swept, committed ones never', async () => {
    const [a, b] = await open();
    const prepared = await a.write([job('s@remote.test')], 'prepared', Date.now());
    const [pending] = await a.write([job('p@remote.test')], 'pending', Date.now());
    expect(await b.sweepStale(3_600_000)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await b.sweepStale(0)).toEqual([`prepared/${prepared[0]!.id}`]);
    await expect(a.commit([prepared[0]!.id])).rejects.toThrow(/neither prepared nor pending/);
    expect(await a.listPending()).toEqual([pending!.id]);
  });

  it('an unreadable job reads as corrupt and is moved aside, never listed again', async () => {
    const [a, b] = await open();
    const [meta] = await a.write([job('q@remote.test')], 'pending', 7000);
    // The recorded size no longer matches the bytes (a truncated or edited job).
    await a.update({ ...meta!, messageBytes: meta!.messageBytes + 5 });
    const state = await b.read(meta!.id);
    expect(state).toMatchObject({ kind: 'corrupt', reason: expect.stringMatching(/bytes/) });
    expect(await b.read('not-a-job')).toMatchObject({ kind: 'corrupt' });
    await b.moveToQuarantine(meta!.id, 8000);
    expect(await a.listPending()).toEqual([]);
    expect(await a.read(meta!.id)).toEqual({ kind: 'missing' });
  });
});
