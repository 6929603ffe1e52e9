/**
 * The queue directory is the truth: a job survives closing the queue while the remote is
 * down and is delivered once by the next queue on the same directory; uncommitted jobs
 * go stale and are deleted; unreadable jobs are quarantined while the others are sent.
 */
import { mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RemoteMx, openTestQueue, testMessage, waitUntil } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function queueDir(): string {
  const dir = tempDir('recrypt-outbound-durable-');
  cleanup.push(dir.remove);
  return dir.path;
}

describe('outbound durability', () => {
  it('survives a restart: remote down, queue closed, new queue on the same directory delivers once', async () => {
    const dir = queueDir();
    const port = await freePort();
    const section = { routes: { 'remote.test': `127.0.0.1:${port}` }, retryInitial: '50ms' };
    const bytes = testMessage('restart', 'H1');

    const first = await openTestQueue(dir, section);
    first.queue.start();
    const [id] = await first.queue.enqueue([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: bytes },
    ]);
    await waitUntil(
      async () => (await first.count('deferred')) >= 1,
      'an attempt against the closed port',
    );
    await first.queue.close();
    const meta = JSON.parse(readFileSync(join(dir, 'pending', id!, 'meta.json'), 'utf8')) as {
      attempts: number;
      lastError: string;
    };
    expect(meta.attempts).toBeGreaterThanOrEqual(1);
    expect(meta.lastError).toMatch(/ECONNREFUSED/);

    const remote = await RemoteMx.start({ port });
    cleanup.push(() => remote.close());
    const second = await openTestQueue(dir, section);
    cleanup.push(() => second.queue.close());
    expect(await second.queue.size()).toBe(1);
    second.queue.start();
    await waitUntil(async () => (await second.queue.size()) === 0, 'the job is delivered');
    expect(remote.received).toHaveLength(1);
    expect(remote.received[0]!.bytes.equals(bytes)).toBe(true);
    expect(await second.count('sent')).toBe(1);
    expect(readdirSync(join(dir, 'pending'))).toEqual([]);
  });

  it('uncommitted jobs of a previous run are deleted once stale, never sent', async () => {
    const dir = queueDir();
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const section = { routes: { 'remote.test': `127.0.0.1:${remote.port}` } };
    const first = await openTestQueue(dir, section);
    const batch = await first.queue.prepare([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: testMessage('p', 'I1') },
    ]);
    await first.queue.close();
    expect(readdirSync(join(dir, 'prepared'))).toEqual(batch.ids);

    // Younger than staleAfter: kept (a prepare may be in progress in the caller).
    const keeping = await openTestQueue(dir, section);
    await keeping.queue.close();
    expect(readdirSync(join(dir, 'prepared'))).toEqual(batch.ids);

    const second = await openTestQueue(dir, section, { staleAfterMs: 0 });
    cleanup.push(() => second.queue.close());
    expect(readdirSync(join(dir, 'prepared'))).toEqual([]);
    expect(await second.queue.size()).toBe(0);
    expect(
      second.logs.some((line) => line.includes('stale uncommitted outbound jobs deleted')),
    ).toBe(true);
    await expect(batch.commit()).rejects.toThrow(/neither prepared nor pending/);
  });

  it('quarantines unreadable jobs and still delivers the others', async () => {
    const dir = queueDir();
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const section = { routes: { 'remote.test': `127.0.0.1:${remote.port}` } };
    const first = await openTestQueue(dir, section);
    const ids = await first.queue.enqueue(
      ['good1', 'good2', 'truncated'].map((name) => ({
        mailFrom: 'a@home.test',
        to: `${name}@remote.test`,
        message: testMessage(name, 'J'),
      })),
    );
    await first.queue.close();
    truncateSync(join(dir, 'pending', ids[2]!, 'message'), 10);
    mkdirSync(join(dir, 'pending', 'zzzzzzzzz-0000000000000000'));
    writeFileSync(join(dir, 'pending', 'zzzzzzzzz-0000000000000000', 'meta.json'), '{"version":1,');
    writeFileSync(join(dir, 'pending', 'zzzzzzzzz-0000000000000000', 'message'), 'x');
    writeFileSync(join(dir, 'pending', 'stray-file'), 'not a job');

    const second = await openTestQueue(dir, section);
    cleanup.push(() => second.queue.close());
    expect(await second.queue.size()).toBe(2);
    second.queue.start();
    await waitUntil(async () => (await second.queue.size()) === 0, 'the good jobs are delivered');
    expect(remote.received.map((mail) => mail.to[0]).sort()).toEqual([
      'good1@remote.test',
      'good2@remote.test',
    ]);
    const quarantined = readdirSync(join(dir, 'quarantine')).map((name) =>
      name.replace(/\.\d+$/, ''),
    );
    expect(quarantined.sort()).toEqual(
      [ids[2]!, 'stray-file', 'zzzzzzzzz-0000000000000000'].sort(),
    );
    expect((await second.metrics.quarantined.get()).values[0]?.value).toBe(3);
    const reasons = second.logs.filter((line) =>
      line.includes('unreadable outbound job quarantined'),
    );
    expect(reasons.join('\n')).toContain('meta.json is not JSON');
    expect(reasons.join('\n')).toContain('message is 10 bytes');
  });

  it('a job corrupted while queued is quarantined at its attempt', async () => {
    const dir = queueDir();
    const remote = await RemoteMx.start();
    cleanup.push(() => remote.close());
    const opened = await openTestQueue(dir, {
      routes: { 'remote.test': `127.0.0.1:${remote.port}` },
    });
    cleanup.push(() => opened.queue.close());
    const [bad, good] = await opened.queue.enqueue(
      ['bad', 'good'].map((name) => ({
        mailFrom: 'a@home.test',
        to: `${name}@remote.test`,
        message: testMessage(name, 'K'),
      })),
    );
    writeFileSync(
      join(dir, 'pending', bad!, 'meta.json'),
      JSON.stringify({ version: 1, id: good }),
    );
    opened.queue.start();
    await waitUntil(async () => (await opened.queue.size()) === 0, 'both jobs are handled');
    expect(remote.received.map((mail) => mail.to[0])).toEqual(['good@remote.test']);
    expect(readdirSync(join(dir, 'quarantine'))).toHaveLength(1);
  });
});
