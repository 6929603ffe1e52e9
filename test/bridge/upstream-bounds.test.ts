/**
 * The bridge's gateway connection (src/bridge/upstream.ts) when the gateway goes away: a
 * local client's change waits in the same queue as the sync, so no operation may wait
 * on a connection that is gone. Against the embedded store's real IMAP server over TLS,
 * through a forwarder that cuts or silences the connection mid-command
 * (test/helpers/bridge-link.ts): the operation in flight fails (at once on a close,
 * after the silence bound on silence), the change queued behind it is answered on a new
 * connection, and `close` returns even when the gateway never answers again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { Upstream, type UpstreamSettings } from '../../src/bridge/upstream.js';
import { startGatewayLink, type GatewayLink } from '../helpers/bridge-link.js';
import { MASTER, startStoreServer, type StoreServer } from '../helpers/store-imap.js';
import { tempDir } from '../helpers/tmp.js';

const USER = 'alice@example.org';
/** The silence bound these tests give the connection (the product's is 45 s). */
const SILENCE_MS = 1500;
/** How long a test waits for what must have settled: far below imapflow's own 5 minutes. */
const SETTLED_MS = 20_000;

const dir = tempDir('bridge-upstream-');
let store: StoreServer;
let link: GatewayLink;
let settings: UpstreamSettings;

beforeAll(async () => {
  const tls = await ensureTlsMaterial(dir.path, undefined, new Date(), 'localhost');
  store = await startStoreServer([USER], {
    tls: { key: tls.key, cert: tls.cert, implicit: true },
    allowUserLogin: true,
  });
  link = await startGatewayLink(store.server.port);
  settings = {
    host: '127.0.0.1',
    port: link.port,
    tls: 'implicit',
    ca: tls.cert,
    servername: 'localhost',
    user: USER,
    password: MASTER.password,
  };
});

afterAll(async () => {
  await link?.close();
  await store?.stop();
  dir.remove();
});

/** How `promise` ended, and after how many milliseconds; `pending` when not within `ms`. */
async function outcome(
  promise: Promise<unknown>,
  ms = SETTLED_MS,
): Promise<{ result: 'ok' | 'failed' | 'pending'; error?: string; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  const result = await Promise.race([
    promise.then(
      () => ({ result: 'ok' as const }),
      (error: unknown) => ({ result: 'failed' as const, error: (error as Error).message }),
    ),
    pending.then((result) => ({ result })),
  ]);
  clearTimeout(timer);
  return { ...result, ms: Date.now() - started };
}

describe('the bridge’s gateway connection', () => {
  it('fails the command a silent gateway never answers, after the silence bound, and answers the change queued behind it on a new connection', async () => {
    const upstream = new Upstream(settings, undefined, { silenceMs: SILENCE_MS });
    try {
      expect((await upstream.listMailboxes()).map((m) => m.path)).toContain('INBOX');
      expect(link.connections()).toBe(1);
      link.silence();
      // The sync's SELECT, then a client's change behind it in the queue.
      const sync = upstream.withMailbox('INBOX', async (_client, selected) => selected.exists);
      const change = upstream.run((client) => client.mailboxCreate('Projects'));
      const stuck = await outcome(sync);
      expect(stuck.result).toBe('failed');
      expect(stuck.ms).toBeGreaterThanOrEqual(SILENCE_MS - 100);
      const queued = await outcome(change);
      expect(queued).toMatchObject({ result: 'ok' });
      expect((await upstream.listMailboxes()).map((m) => m.path)).toContain('Projects');
    } finally {
      await upstream.close();
    }
  });

  it('fails the command in flight at once when the gateway closes the connection, and the next one reconnects', async () => {
    // A silence bound far beyond the test: only the close can end the wait.
    const upstream = new Upstream(settings, undefined, { silenceMs: 10 * 60_000 });
    try {
      await upstream.listMailboxes();
      link.silence();
      const inFlight = upstream.withMailbox('INBOX', async (_client, selected) => selected.exists);
      // The command is on the wire (the server never sees it) when the connection closes.
      await new Promise((resolve) => setTimeout(resolve, 300));
      link.cut();
      const closed = await outcome(inFlight);
      expect(closed.result).toBe('failed');
      expect(closed.ms).toBeLessThan(SETTLED_MS);
      expect(await upstream.withMailbox('INBOX', async (_c, selected) => selected.exists)).toBe(0);
    } finally {
      await upstream.close();
    }
  });

  it('stops within the bound when the gateway never answers again (the operation in flight and the LOGOUT)', async () => {
    const upstream = new Upstream(settings, undefined, { silenceMs: SILENCE_MS });
    await upstream.listMailboxes();
    link.silence();
    const inFlight = upstream.run((client) => client.status('INBOX', { messages: true }));
    const stopped = await outcome(upstream.close());
    expect(stopped.result).toBe('ok');
    expect((await outcome(inFlight)).result).toBe('failed');
    // Stopped: nothing connects again.
    const after = await outcome(upstream.listMailboxes());
    expect(after).toMatchObject({ result: 'failed', error: 'the bridge is stopping' });
  });
});
