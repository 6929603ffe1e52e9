/**
 * Two outbound queues (as two gateway processes) on one real redis-server, one real SMTP
 * server as the remote MX: every job is delivered exactly once though both workers run;
 * a job whose claim is held by a process that died is sent by the other once the lease
 * runs out; the queue size metric shows the whole shared depth in both.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisQueueStore } from '../../src/outbound/redis-queue-store.js';
import { RemoteMx, openTestQueue, testMessage, waitUntil } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { tempDir } from '../helpers/tmp.js';

let redis: RedisServer;
const cleanup: Array<() => Promise<void> | void> = [];
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(async () => {
  await redis.dispose();
});

function sharedStore(prefix: string): RedisQueueStore {
  const client = new Redis(redis.url);
  cleanup.push(() => client.disconnect());
  return new RedisQueueStore({ client, prefix });
}

async function process(prefix: string, section: Record<string, unknown>) {
  const dir = tempDir('recrypt-shared-queue-');
  cleanup.push(dir.remove);
  const test = await openTestQueue(dir.path, section, {
    store: sharedStore(prefix),
    maintenanceIntervalMs: 200,
  });
  cleanup.push(() => test.queue.close());
  return test;
}

const gauge = async (metrics: {
  queueSize: { get(): Promise<{ values: Array<{ value: number }> }> };
}) => (await metrics.queueSize.get()).values[0]?.value;

describe('outbound queue shared through Redis', () => {
  it('two workers deliver every job exactly once; both report the shared depth', async () => {
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const prefix = `shared${++prefixes}:`;
    const section = { routes: { 'remote.test': `127.0.0.1:${remote.port}` }, concurrency: 3 };
    const a = await process(prefix, section);
    const b = await process(prefix, section);
    const messages = Array.from({ length: 12 }, (_, i) => ({
      mailFrom: i % 2 === 0 ? 'a@home.test' : '',
      to: `m${i}@remote.test`,
      message: testMessage(`job ${i}`, `S${i}`),
    }));
    await a.queue.enqueue(messages.slice(0, 6));
    await b.queue.enqueue(messages.slice(6));
    expect(await gauge(a.metrics)).toBe(12);
    expect(await gauge(b.metrics)).toBe(12);
    expect(await a.queue.size()).toBe(12);
    a.queue.start();
    b.queue.start();
    await remote.waitFor(12);
    await waitUntil(async () => (await a.queue.size()) === 0, 'the shared queue is empty');
    // Both sent some (each had its own jobs due at once); none twice.
    const recipients = remote.received.flatMap((mail) => mail.to).sort();
    expect(recipients).toEqual(messages.map((m) => m.to).sort());
    expect((await a.count('sent')) + (await b.count('sent'))).toBe(12);
    expect(await gauge(b.metrics)).toBe(0);
  });

  it('a job claimed by a process that died is sent by the other once the lease ends, once', async () => {
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const prefix = `shared${++prefixes}:`;
    const section = {
      routes: { 'remote.test': `127.0.0.1:${remote.port}` },
      lease: '1500ms',
    };
    // The dead process: it queued the job and claimed it, and will never release it.
    const dead = sharedStore(prefix);
    const [meta] = await dead.write(
      [{ mailFrom: 'a@home.test', to: 'late@remote.test', message: testMessage('late', 'L1') }],
      'pending',
      Date.now(),
    );
    expect(await dead.claim(meta!.id, 1500)).toBe(true);
    const b = await process(prefix, section);
    b.queue.start();
    await remote.waitFor(1);
    await waitUntil(async () => (await b.queue.size()) === 0, 'the job is done');
    expect(remote.to('late@remote.test')).toHaveLength(1);
    expect(b.logs.some((line) => line.includes('outbound message delivered'))).toBe(true);
    // The dead holder's late outcome changes nothing: the job is gone.
    await dead.update({ ...meta!, attempts: 1, nextAttempt: 0 });
    expect(await dead.read(meta!.id)).toEqual({ kind: 'missing' });
  });

  it('a flush through one process makes the other retry at once', async () => {
    const port = await freePort();
    const prefix = `shared${++prefixes}:`;
    const section = { routes: { 'remote.test': `127.0.0.1:${port}` }, retryInitial: '1h' };
    const a = await process(prefix, section);
    a.queue.start();
    await a.queue.enqueue([
      { mailFrom: 'a@home.test', to: 'f@remote.test', message: testMessage('flush', 'F1') },
    ]);
    await waitUntil(async () => (await a.count('deferred')) >= 1, 'a first attempt, refused');
    await a.queue.close();
    const remote = await RemoteMx.start({ port });
    cleanup.push(() => remote.close());
    const b = await process(prefix, section);
    b.queue.start();
    // b does not retry before the hour is up…
    expect(await b.queue.size()).toBe(1);
    // …unless the operator asks (recrypt queue flush stores the request in Redis).
    await sharedStore(prefix).requestFlush();
    await remote.waitFor(1);
    expect(remote.to('f@remote.test')).toHaveLength(1);
  });
});
