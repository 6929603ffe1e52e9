/**
 * The outbound queue delivering to a real SMTP server on loopback (outbound.routes points
 * the test domains at it): exact bytes over opportunistic STARTTLS, a 4xx then success,
 * two-phase prepare/commit/abort, a remote that never greets, the flush file, and the
 * concurrency bound.
 */
import { writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RemoteMx,
  type ReceivedMail,
  type TestQueue,
  openTestQueue,
  testMessage,
  waitUntil,
} from '../helpers/outbound-remote.js';
import { tempDir } from '../helpers/tmp.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setUp(
  section: Record<string, unknown>,
  remote: RemoteMx,
  extra: Parameters<typeof openTestQueue>[2] = {},
): Promise<TestQueue & { dir: string }> {
  const dir = tempDir('recrypt-outbound-');
  cleanup.push(dir.remove);
  const routes = {
    'remote.test': `127.0.0.1:${remote.port}`,
    'home.test': `127.0.0.1:${remote.port}`,
  };
  const opened = await openTestQueue(dir.path, { routes, retryInitial: '20ms', ...section }, extra);
  cleanup.push(() => opened.queue.close());
  return { ...opened, dir: dir.path };
}

async function startRemote(options: Parameters<typeof RemoteMx.start>[0] = {}): Promise<RemoteMx> {
  const remote = await RemoteMx.start(options);
  cleanup.push(() => remote.close());
  return remote;
}

describe('outbound delivery', () => {
  it('delivers exactly the enqueued bytes, over STARTTLS, and deletes the job', async () => {
    const remote = await startRemote();
    const { queue, count, logs, dir } = await setUp({}, remote);
    const bytes = Buffer.concat([
      testMessage('exact bytes', 'SECRET-BODY-1'),
      Buffer.from('..two dots\r\n.\r\nx\r\n\xe9 8-bit \xff\r\n', 'latin1'),
      Buffer.from(`${'A'.repeat(76)}\r\n`.repeat(2000)),
    ]);
    const [id] = await queue.enqueue([
      {
        mailFrom: 'list-bounces@home.test',
        to: 'member@remote.test',
        message: bytes,
        origin: { kind: 'list-post', list: 'l@home.test' },
      },
    ]);
    expect(id).toMatch(/^[0-9a-z]{9}-[0-9a-f]{16}$/);
    expect(await queue.size()).toBe(1);
    // Durable before enqueue resolved: the job is on disk, committed.
    expect(readFileSync(join(dir, 'pending', id!, 'message')).equals(bytes)).toBe(true);
    queue.start();
    await waitUntil(() => remote.received.length === 1, 'the remote got the message');
    const [mail] = remote.received as [ReceivedMail];
    expect(mail.bytes.equals(bytes)).toBe(true);
    expect(mail.mailFrom).toBe('list-bounces@home.test');
    expect(mail.to).toEqual(['member@remote.test']);
    expect(mail.secure).toBe(true);
    expect(mail.ehlo).toBe('gw.test');
    await waitUntil(async () => (await queue.size()) === 0, 'the job is gone');
    expect(readdirSync(join(dir, 'pending'))).toEqual([]);
    expect(await count('sent')).toBe(1);
    const delivered = logs.find((line) => line.includes('outbound message delivered'));
    expect(delivered).toContain('member@remote.test');
    expect(logs.join('\n')).not.toContain('SECRET-BODY-1');
    expect(logs.join('\n')).not.toContain('exact bytes');
  });

  it('retries after a 4xx and then delivers once', async () => {
    let refusals = 0;
    const remote = await startRemote({
      onRcpt: () => (refusals++ < 2 ? [451, '4.3.0 Try again later'] : undefined),
    });
    const { queue, count } = await setUp({}, remote);
    queue.start();
    await queue.enqueue([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: testMessage('retry', 'B2') },
    ]);
    await waitUntil(() => remote.received.length === 1, 'delivery after the retries');
    await waitUntil(async () => (await queue.size()) === 0, 'the job is gone');
    expect(await count('deferred')).toBe(2);
    expect(await count('sent')).toBe(1);
    expect(remote.received).toHaveLength(1);
  });

  it('prepare + abort sends nothing; prepare + commit sends', async () => {
    const remote = await startRemote();
    const { queue, dir } = await setUp({}, remote);
    queue.start();
    const aborted = await queue.prepare([
      { mailFrom: 'a@home.test', to: 'aborted@remote.test', message: testMessage('aborted', 'C1') },
    ]);
    const committed = await queue.prepare([
      {
        mailFrom: 'a@home.test',
        to: 'committed@remote.test',
        message: testMessage('committed', 'C2'),
      },
    ]);
    expect(readdirSync(join(dir, 'prepared')).sort()).toEqual(
      [...aborted.ids, ...committed.ids].sort(),
    );
    expect(await queue.size()).toBe(0);
    await aborted.abort();
    await committed.commit();
    await waitUntil(
      () => remote.to('committed@remote.test').length === 1,
      'the committed job is sent',
    );
    // A later job is sent after it; the aborted one never was.
    await queue.enqueue([
      { mailFrom: 'a@home.test', to: 'later@remote.test', message: testMessage('later', 'C3') },
    ]);
    await waitUntil(() => remote.to('later@remote.test').length === 1, 'the later job is sent');
    expect(remote.received.map((mail) => mail.to[0])).toEqual([
      'committed@remote.test',
      'later@remote.test',
    ]);
    expect(readdirSync(join(dir, 'prepared'))).toEqual([]);
    await expect(aborted.commit()).rejects.toThrow(/neither prepared nor pending/);
  });

  it('a remote that never greets: the attempt times out and the job waits, recorded on disk', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const port = (silent.address() as { port: number }).port;
    const remote = await startRemote();
    const { queue, dir, count } = await setUp(
      {
        routes: { 'remote.test': `127.0.0.1:${port}` },
        greetingTimeout: '300ms',
        retryInitial: '1h',
      },
      remote,
    );
    queue.start();
    const [id] = await queue.enqueue([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: testMessage('hang', 'D1') },
    ]);
    await waitUntil(async () => (await count('deferred')) === 1, 'the attempt is deferred');
    const meta = JSON.parse(readFileSync(join(dir, 'pending', id!, 'meta.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(meta).toMatchObject({ id, to: 'm@remote.test', attempts: 1 });
    expect(String(meta.lastError)).toMatch(/greeting|timeout/i);
    expect(meta.nextAttempt as number).toBeGreaterThan(meta.created as number);
    expect(await queue.size()).toBe(1);
  });

  it('touching <queue>/flush makes waiting jobs due now', async () => {
    let refuse = true;
    const remote = await startRemote({
      onRcpt: () => (refuse ? [421, '4.3.2 Not now'] : undefined),
    });
    const { queue, dir, count } = await setUp({ retryInitial: '1h' }, remote, {
      maintenanceIntervalMs: 50,
    });
    queue.start();
    await queue.enqueue([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: testMessage('flush', 'E1') },
    ]);
    await waitUntil(async () => (await count('deferred')) === 1, 'the first attempt is deferred');
    refuse = false;
    writeFileSync(join(dir, 'flush'), '');
    await waitUntil(() => remote.received.length === 1, 'delivery after the flush');
    await waitUntil(async () => (await queue.size()) === 0, 'the job is gone');
  });

  it('runs at most `concurrency` deliveries at a time', async () => {
    let inTransaction = 0;
    let most = 0;
    const held: Array<() => void> = [];
    const remote = await startRemote({
      beforeAccept: () =>
        new Promise<void>((resolve) => {
          inTransaction++;
          most = Math.max(most, inTransaction);
          held.push(() => {
            inTransaction--;
            resolve();
          });
        }),
    });
    const { queue } = await setUp({ concurrency: 2 }, remote);
    await queue.enqueue(
      Array.from({ length: 6 }, (_, i) => ({
        mailFrom: 'a@home.test',
        to: `m${i}@remote.test`,
        message: testMessage(`c${i}`, 'F'),
      })),
    );
    queue.start();
    while (remote.received.length < 6) {
      await waitUntil(
        () => held.length >= Math.min(2, 6 - remote.received.length),
        'a full set of deliveries in flight',
      );
      // Give a third connection the chance to show up if the bound were not kept.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const release = held.splice(0);
      const before = remote.received.length;
      for (const step of release) step();
      await waitUntil(
        () => remote.received.length === before + release.length,
        'the released ones are accepted',
      );
    }
    expect(most).toBe(2);
    await waitUntil(async () => (await queue.size()) === 0, 'all jobs done');
  });

  it('sends everything through the relay when one is set', async () => {
    const relay = await startRemote();
    const { queue } = await setUp(
      { routes: {}, relay: { host: '127.0.0.1', port: relay.port } },
      relay,
    );
    queue.start();
    await queue.enqueue([
      {
        mailFrom: 'a@home.test',
        to: 'someone@far-away.example',
        message: testMessage('relayed', 'L1'),
      },
    ]);
    await waitUntil(() => relay.received.length === 1, 'the relay got it');
    expect(relay.received[0]!.to).toEqual(['someone@far-away.example']);
  });

  it('never sends relay credentials to a server whose certificate it cannot verify', async () => {
    const relay = await startRemote({ offerAuth: true });
    const secretDir = tempDir('recrypt-outbound-secret-');
    cleanup.push(secretDir.remove);
    const passwordFile = join(secretDir.path, 'relay.secret');
    writeFileSync(passwordFile, 'relay-password\n');
    const { queue, count, dir, logs } = await setUp(
      {
        routes: {},
        relay: { host: '127.0.0.1', port: relay.port, user: 'gw', passwordFile },
        retryInitial: '1h',
      },
      relay,
    );
    queue.start();
    const [id] = await queue.enqueue([
      {
        mailFrom: 'a@home.test',
        to: 'someone@far-away.example',
        message: testMessage('auth', 'M1'),
      },
    ]);
    await waitUntil(async () => (await count('deferred')) === 1, 'the attempt is deferred');
    const meta = JSON.parse(readFileSync(join(dir, 'pending', id!, 'meta.json'), 'utf8')) as {
      lastError: string;
    };
    expect(meta.lastError).toMatch(/certificate/i);
    expect(relay.logins).toEqual([]);
    expect(relay.received).toEqual([]);
    expect(logs.join('\n')).not.toContain('relay-password');
  });

  it('with requireTls, a certificate that does not verify means no delivery (retried later)', async () => {
    const remote = await startRemote();
    const { queue, count, dir } = await setUp({ requireTls: true, retryInitial: '1h' }, remote);
    queue.start();
    const [id] = await queue.enqueue([
      { mailFrom: 'a@home.test', to: 'm@remote.test', message: testMessage('strict', 'N1') },
    ]);
    await waitUntil(async () => (await count('deferred')) === 1, 'the attempt is deferred');
    const meta = JSON.parse(readFileSync(join(dir, 'pending', id!, 'meta.json'), 'utf8')) as {
      lastError: string;
    };
    expect(meta.lastError).toMatch(/certificate/i);
    expect(remote.received).toEqual([]);
  });
});
