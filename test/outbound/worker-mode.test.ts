/**
 * The outbound queue in a worker of several processes (`deliver: false`, docs/deployment.md
 * "Several processes on one machine"): it writes jobs into the store and keeps none of
 * them in memory, however many it queues (the queue directory, and a real redis-server);
 * it reads no pending job when it opens (an unreadable one stays where it is until the
 * delivering process looks); and with the SQLite key store each batch it commits reaches
 * the primary over the IPC link (PrimaryLink → PrimaryShared, through a cloning,
 * asynchronous channel as IPC is), whose queue sends it at once to a real SMTP server,
 * long before its next poll of the directory; without that message the poll still finds them.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PrimaryLink } from '../../src/gateway/primary-link.js';
import type { OutboundQueueHandle } from '../../src/outbound/index.js';
import { RedisQueueStore } from '../../src/outbound/redis-queue-store.js';
import { RemoteMx, openTestQueue, testMessage } from '../helpers/outbound-remote.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { tempDir } from '../helpers/tmp.js';
import { inProcessPrimary } from '../helpers/primary-ipc.js';

let redis: RedisServer;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(async () => {
  await redis.dispose();
});

function queueDir(): string {
  const dir = tempDir('recrypt-worker-queue-');
  cleanup.push(dir.remove);
  return dir.path;
}

async function open(
  dir: string,
  extra: Parameters<typeof openTestQueue>[2] = {},
  section: Record<string, unknown> = {},
) {
  const test = await openTestQueue(dir, section, extra);
  cleanup.push(() => test.queue.close());
  return test;
}

function redisStore(prefix: string): { store: RedisQueueStore; client: Redis } {
  const client = new Redis(redis.url);
  cleanup.push(() => client.disconnect());
  return { store: new RedisQueueStore({ client, prefix }), client };
}

const batch = (n: number, from: number) =>
  Array.from({ length: n }, (_, i) => ({
    mailFrom: 'list-bounces@home.test',
    to: `m${from + i}@remote.test`,
    message: testMessage(`job ${from + i}`, `B${from + i}`),
  }));

/** Queues `batches` × `size` jobs (every fourth batch prepared, then committed, as lists do). */
async function queueMany(queue: OutboundQueueHandle, batches: number, size: number) {
  for (let b = 0; b < batches; b++) {
    const messages = batch(size, b * size);
    if (b % 4 === 3) await (await queue.prepare(messages)).commit();
    else await queue.enqueue(messages);
    // Bounded at every step: nothing of a written job stays in this process.
    expect(queue.scheduled()).toBe(0);
  }
}

describe('an outbound queue that only takes jobs (a worker process)', () => {
  it('keeps no job in memory once it is in the queue directory', async () => {
    const dir = queueDir();
    const worker = await open(dir, { deliver: false });
    await queueMany(worker.queue, 8, 10);
    expect(await worker.queue.size()).toBe(80);
    expect(readdirSync(join(dir, 'pending'))).toHaveLength(80);
    // The process that delivers holds them all: the count above would show a worker's too.
    const primary = await open(dir);
    expect(primary.queue.scheduled()).toBe(80);
  });

  it('keeps no job in memory once it is in Redis', async () => {
    const worker = await open(queueDir(), { deliver: false, store: redisStore('wm1:').store });
    await queueMany(worker.queue, 40, 25);
    expect(await worker.queue.size()).toBe(1000);
    const primary = await open(queueDir(), { store: redisStore('wm1:').store });
    expect(primary.queue.scheduled()).toBe(1000);
  });

  it('reads no pending job when it opens (the directory)', async () => {
    const dir = queueDir();
    const id = 'aaaaaaaaa-0123456789abcdef';
    mkdirSync(join(dir, 'pending', id), { recursive: true });
    writeFileSync(join(dir, 'pending', id, 'meta.json'), 'not json');
    const worker = await open(dir, { deliver: false });
    expect(worker.queue.scheduled()).toBe(0);
    expect(existsSync(join(dir, 'pending', id))).toBe(true);
    expect(worker.logs.join('\n')).not.toContain('quarantined');
    // The delivering process does read it (and moves it aside): the check above can fail.
    await open(dir);
    expect(existsSync(join(dir, 'pending', id))).toBe(false);
  });

  it('reads no pending job when it opens (Redis)', async () => {
    const { store, client } = redisStore('wm2:');
    const first = await open(queueDir(), { deliver: false, store });
    const [id] = await first.queue.enqueue(batch(1, 0));
    await client.hset('wm2:{q}:jobs', id!, 'not json');
    const worker = await open(queueDir(), { deliver: false, store: redisStore('wm2:').store });
    expect(worker.queue.scheduled()).toBe(0);
    expect(await client.hlen('wm2:{q}:quarantine')).toBe(0);
    await open(queueDir(), { store: redisStore('wm2:').store });
    expect(await client.hlen('wm2:{q}:quarantine')).toBe(1);
  });

  it("tells the primary over IPC; the primary's queue sends at once, not at its next poll", async () => {
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const dir = queueDir();
    // A poll a minute away: only the worker's message can make the primary send sooner.
    const primaryQueue = await open(
      dir,
      { maintenanceIntervalMs: 60_000 },
      { routes: { 'remote.test': `127.0.0.1:${remote.port}` } },
    );
    primaryQueue.queue.start();
    const link = workerLinkTo(primaryQueue.queue);
    const worker = await open(dir, { deliver: false, onQueued: (jobs) => link.queued(jobs) });

    await worker.queue.enqueue(batch(2, 0));
    await remote.waitFor(2, 10_000);
    await (await worker.queue.prepare(batch(1, 2))).commit();
    await remote.waitFor(3, 10_000);
    expect(remote.received.flatMap((mail) => mail.to).sort()).toEqual([
      'm0@remote.test',
      'm1@remote.test',
      'm2@remote.test',
    ]);
    // An aborted batch is never announced; what is not a job is ignored.
    await (await worker.queue.prepare(batch(1, 3))).abort();
    primaryQueue.queue.noticeQueued([
      { id: '../../etc', nextAttempt: 0 },
      { id: 'aaaaaaaaa-0123456789abcdef', nextAttempt: Number.NaN },
      null as never,
    ]);
    expect(primaryQueue.queue.scheduled()).toBe(0);
  });

  it('without the message (lost with a worker) the primary still finds the jobs at its poll', async () => {
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const dir = queueDir();
    const primaryQueue = await open(
      dir,
      { maintenanceIntervalMs: 200 },
      { routes: { 'remote.test': `127.0.0.1:${remote.port}` } },
    );
    primaryQueue.queue.start();
    const worker = await open(dir, { deliver: false });
    await worker.queue.enqueue(batch(1, 0));
    await remote.waitFor(1, 10_000);
    expect(remote.received[0]!.to).toEqual(['m0@remote.test']);
  });
});

/** One worker's PrimaryLink to a PrimaryShared that hands queued jobs to `queue`. */
function workerLinkTo(queue: OutboundQueueHandle): PrimaryLink {
  return inProcessPrimary(1, { onJobsQueued: (jobs) => queue.noticeQueued(jobs) }).workers[0]!;
}
