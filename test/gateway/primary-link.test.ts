/**
 * The parts of several processes with the SQLite key store that run over cluster IPC
 * (docs/deployment.md "Several processes on one machine"), in one process: each worker's
 * PrimaryLink talks to one PrimaryShared through a channel that clones every message
 * and delivers it on a later turn, as IPC does. Real SQLite key stores, the real login
 * throttle and rate limiter. multi-process-sqlite.test.ts runs the same through real
 * processes; this adds what those cannot show cheaply: a primary that does not answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { askingRateLimiter } from '../../src/admin/ipc-rate-limit.js';
import { askingLoginFailures } from '../../src/imap/ipc-throttle.js';
import { UnavailableError } from '../../src/imap/errors.js';
import { LoginThrottle } from '../../src/imap/throttle.js';
import {
  loadOrCreateGatewayKey,
  openKeyStore,
  type KeyStore,
  type KeyStoreEvent,
} from '../../src/keystore/index.js';
import { relayedKeyStore } from '../../src/gateway/cluster-events.js';
import { claimingHeldPosts } from '../../src/gateway/held-claims.js';
import { FileHeldPostStore } from '../../src/lists/held-posts.js';
import { PrimaryLink, PrimaryUnavailableError } from '../../src/gateway/primary-link.js';
import { tempDir } from '../helpers/tmp.js';
import { inProcessPrimary } from '../helpers/primary-ipc.js';

const tmp = tempDir('recrypt-primary-link-');
const opened: KeyStore[] = [];
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

async function sqliteStore(name: string): Promise<KeyStore> {
  const gatewayKey = loadOrCreateGatewayKey(tmp.path);
  const store = await openKeyStore(
    { kind: 'sqlite', path: `${name}.sqlite` },
    {
      gatewayKey,
      dataDir: tmp.path,
    },
  );
  opened.push(store);
  return store;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('key-store events through the primary', () => {
  it("reach the other worker's and the primary's subscribers once, not the sender again", async () => {
    const { primary, workers } = inProcessPrimary(2);
    // Separate files: SQLite's own in-process notification cannot carry them here.
    const one = relayedKeyStore(await sqliteStore('one'), workers[0]!);
    const two = relayedKeyStore(await sqliteStore('two'), workers[1]!);
    const own = relayedKeyStore(await sqliteStore('primary'), primary.relay);
    const heard = {
      one: [] as KeyStoreEvent[],
      two: [] as KeyStoreEvent[],
      own: [] as KeyStoreEvent[],
    };
    one.keyStore.subscribe((event) => heard.one.push(event));
    two.keyStore.subscribe((event) => heard.two.push(event));
    own.keyStore.subscribe((event) => heard.own.push(event));

    const { address } = await one.keyStore.addUser({ address: 'gone@example.org' });
    await one.keyStore.removeUser(address);
    await settle();
    const removed = { type: 'user-removed', address };
    expect(heard.one).toEqual([removed]);
    expect(heard.two).toEqual([removed]);
    expect(heard.own).toEqual([removed]);

    // The primary's own changes reach every worker.
    await own.keyStore.addUser({ address: 'other@example.org' });
    await own.keyStore.removeUser('other@example.org');
    await settle();
    expect(heard.two.at(-1)).toEqual({ type: 'user-removed', address: 'other@example.org' });
    expect(heard.one.at(-1)).toEqual({ type: 'user-removed', address: 'other@example.org' });

    // Stopped: nothing more arrives from the others.
    two.stop();
    await one.keyStore.addUser({ address: 'third@example.org' });
    await one.keyStore.removeUser('third@example.org');
    await settle();
    expect(heard.two).toHaveLength(2);
  });
});

describe('login failure counts held by the primary', () => {
  it('add up over the workers: the back-off is the one count’s', async () => {
    const { workers } = inProcessPrimary(2);
    const throttles = workers.map(
      (link) => new LoginThrottle({ shared: askingLoginFailures((q) => link.ask(q)) }),
    );
    for (let i = 0; i < 4; i++)
      await throttles[i % 2]!.recordFailureShared('192.0.2.1', `user${i}@example.org`);
    // Two failures each locally (free); four together from the address: 500 ms · 2.
    expect(throttles[0]!.delayMs('192.0.2.1', 'new@example.org')).toBe(0);
    expect(await throttles[0]!.delayFor('192.0.2.1', 'new@example.org')).toBe(1000);
    expect(await throttles[1]!.delayFor('192.0.2.1', 'new@example.org')).toBe(1000);
    // A success clears the account's count everywhere, not the address's.
    for (let i = 0; i < 3; i++)
      await throttles[1]!.recordFailureShared(`198.51.100.${i}`, 'bob@example.org');
    expect(await throttles[0]!.delayFor('203.0.113.9', 'bob@example.org')).toBe(500);
    await throttles[1]!.recordSuccessShared('bob@example.org');
    expect(await throttles[0]!.delayFor('203.0.113.9', 'bob@example.org')).toBe(0);
  });

  it('refuse the login when the primary does not answer in time (fail closed)', async () => {
    const silent = new PrimaryLink(() => true, { timeoutMs: 50 });
    const throttle = new LoginThrottle({ shared: askingLoginFailures((q) => silent.ask(q)) });
    const started = Date.now();
    await expect(throttle.delayFor('192.0.2.1', 'a@example.org')).rejects.toBeInstanceOf(
      UnavailableError,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // Without a channel (the primary is gone) at once.
    const gone = new PrimaryLink(() => false);
    await expect(gone.ask({ kind: 'login-counts', keys: ['ip:x'] })).rejects.toBeInstanceOf(
      PrimaryUnavailableError,
    );
  });

  it('bound the questions waiting: one more is refused at once', async () => {
    const silent = new PrimaryLink(() => true, { timeoutMs: 60_000, maxPending: 3 });
    const waiting = Array.from({ length: 3 }, () =>
      silent.ask({ kind: 'login-clear', key: 'account:a' }).catch((error: unknown) => error),
    );
    await expect(silent.ask({ kind: 'login-clear', key: 'account:a' })).rejects.toThrow(
      'too many questions',
    );
    // Answers settle them (here: the primary's error answer).
    for (let id = 0; id < 3; id++) silent.answer({ id, error: 'stopping' });
    for (const error of await Promise.all(waiting))
      expect(error).toBeInstanceOf(PrimaryUnavailableError);
  });
});

describe('rate limits held by the primary', () => {
  const settings = { perMinute: 1, burst: 3 };

  it('are one bucket for every worker', async () => {
    const { workers } = inProcessPrimary(2);
    const limiters = workers.map((link) =>
      askingRateLimiter((q) => link.ask(q), { scope: 'admin', settings }),
    );
    const verdicts = [];
    for (let i = 0; i < 6; i++) verdicts.push(await limiters[i % 2]!.take('192.0.2.7'));
    expect(verdicts.map((v) => v.allowed)).toEqual([true, true, true, false, false, false]);
    expect(verdicts[5]).toEqual({ allowed: false, retryAfterSeconds: 60 });
    // Another scope has buckets of its own.
    const submission = askingRateLimiter((q) => workers[0]!.ask(q), {
      scope: 'submission',
      settings,
    });
    expect(await submission.take('192.0.2.7')).toEqual({ allowed: true });
  });

  it("fall back to the worker's own bucket when the primary does not answer", async () => {
    const silent = new PrimaryLink(() => true, { timeoutMs: 20 });
    const errors: unknown[] = [];
    const limiter = askingRateLimiter((q) => silent.ask(q), {
      scope: 'admin',
      settings,
      onError: (error) => errors.push(error),
    });
    const verdicts = [];
    for (let i = 0; i < 4; i++) verdicts.push((await limiter.take('192.0.2.8')).allowed);
    expect(verdicts).toEqual([true, true, true, false]);
    expect(errors).toHaveLength(4);
  });
});

describe('claims on held posts held by the primary', () => {
  it('let one worker at a time moderate a post; a silent primary fails the request', async () => {
    const { workers } = inProcessPrimary(2);
    const files = new FileHeldPostStore({ dataDir: tmp.path });
    const [one, two] = workers.map((link) => claimingHeldPosts(files, (q) => link.ask(q)));
    const post = await one!.hold('team@example.org', 'bob@example.org', Buffer.from('post'));
    // Both workers see the post (the files); only one may claim it.
    expect((await two!.list('team@example.org')).map((p) => p.id)).toEqual([post.id]);
    const release = await one!.claim!('team@example.org', post.id, 60_000);
    expect(release).not.toBeNull();
    expect(await two!.claim!('TEAM@example.org', post.id, 60_000)).toBeNull();
    await release!();
    const again = await two!.claim!('team@example.org', post.id, 60_000);
    expect(again).not.toBeNull();
    // A claim that ran out frees the post too.
    await again!();
    expect(await one!.claim!('team@example.org', post.id, 1)).not.toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await two!.claim!('team@example.org', post.id, 60_000)).not.toBeNull();

    const silent = new PrimaryLink(() => true, { timeoutMs: 20 });
    const cut = claimingHeldPosts(files, (q) => silent.ask(q));
    await expect(cut.claim!('team@example.org', post.id, 60_000)).rejects.toBeInstanceOf(
      PrimaryUnavailableError,
    );
  });
});
