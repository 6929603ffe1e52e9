/**
 * The bridge while the gateway changes under it (docs/bridge.md, "While it runs"), with
 * real parts: a real gateway (test/helpers/bridge-world.ts), imapflow and Python's
 * imaplib as the clients. Clients are served while the first sync runs and see the
 * messages arrive; changes in folders other than INBOX come down by IDLE (no polling:
 * the poll interval is an hour), on a bounded number of watches; a mailbox that gets a
 * new UIDVALIDITY or is deleted on the gateway ends the sessions that have it selected
 * with `* BYE`, rather than showing them an emptied mailbox.
 */
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  bridgeClient,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import { ImaplibSession } from '../helpers/imaplib-session.js';
import { tempDir } from '../helpers/tmp.js';

const BULK = 240;
const PUSHED_MARKER = 'Pushedintoanotherfoldermarker';

const dir = tempDir('recrypt-bridge-live-');
let world: BridgeWorld;
let bridge: RunningBridge;
let client: ImapFlow;
const sessions: ImaplibSession[] = [];

const message = (subject: string, body: string): Buffer =>
  Buffer.from(`From: bob@sender.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

async function onGateway<T>(work: (proxy: ImapFlow) => Promise<T>): Promise<T> {
  const proxy = await world.proxyClient();
  try {
    return await work(proxy);
  } finally {
    await proxy.logout();
  }
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await world.deliver('first message', 'Hello Alice.\n');
  await onGateway(async (proxy) => {
    for (const name of ['Bulk', 'Renewed', 'Gone']) await proxy.mailboxCreate(name);
    for (let i = 1; i <= BULK; i++) await proxy.append('Bulk', message(`bulk ${i}`, `Bulk ${i}`));
    await proxy.append('Renewed', message('renewed', 'Before the new UIDVALIDITY'));
    await proxy.append('Gone', message('gone', 'In a folder deleted later'));
  });
}, 300_000);

afterAll(async () => {
  for (const session of sessions) session.close();
  await client?.logout().catch(() => undefined);
  await bridge?.close();
  await world?.close();
  dir.remove();
});

describe('recrypt bridge while the gateway changes', () => {
  it('serves clients while the first sync runs: the messages appear in the open mailbox as they are fetched', async () => {
    bridge = await runBridge({
      ...world.options(join(dir.path, 'bridge-data'), true),
      waitForFirstSync: false,
      pollMs: 3_600_000,
    });
    let synced = false;
    void bridge.firstSync.then(() => (synced = true));
    // Listeners are up and the folders known, and no message is fetched yet: the round
    // that fetches them starts with a LIST of its own.
    expect(bridge.sync.mailboxes.get('Bulk')?.records()).toEqual([]);

    // A small folder opened now does not wait for Bulk (listed before it) to be complete:
    // Bulk gives way between two batches.
    const early = await bridgeClient(bridge);
    let bulkThen = -1;
    try {
      await withMailbox(early, 'Renewed', () =>
        waitFor(
          'the small folder’s message',
          async () => {
            await early.noop();
            bulkThen = bridge.sync.mailboxes.get('Bulk')!.records().length;
            return early.mailbox !== false && early.mailbox.exists === 1;
          },
          120_000,
        ),
      );
    } finally {
      await early.logout();
    }
    expect(bulkThen).toBeLessThan(BULK);

    client = await bridgeClient(bridge);
    const seen: number[] = [];
    client.on('exists', (update: { count: number }) => seen.push(update.count));
    const lock = await client.getMailboxLock('Bulk');
    try {
      const atSelect = client.mailbox === false ? -1 : client.mailbox.exists;
      expect(atSelect).toBeLessThan(BULK);
      await waitFor(
        'all bulk messages in the open session',
        async () => {
          await client.noop();
          return client.mailbox !== false && client.mailbox.exists === BULK;
        },
        120_000,
      );
      // EXISTS came in steps, in the session opened before the sync was done.
      expect(seen.length).toBeGreaterThan(0);
      expect(seen[seen.length - 1]).toBe(BULK);
      const last = await client.fetchOne(String(BULK), { source: true });
      expect(last === false ? '' : last.source!.toString('utf8')).toContain(`Bulk ${BULK}`);
    } finally {
      lock.release();
    }
    await bridge.firstSync;
    expect(synced).toBe(true);
  });

  it('watches INBOX, the mailboxes clients have open and the special-use ones by IDLE, at most four', async () => {
    await client.mailboxOpen('Bulk');
    await waitFor('a watch on the open mailbox', () => bridge.watchedMailboxes().includes('Bulk'));
    const watched = bridge.watchedMailboxes();
    expect(watched.length).toBeLessThanOrEqual(4);
    expect(watched).toContain('INBOX');
    expect(watched).toContain('Sent');
    expect(watched).not.toContain('Gone');

    // Polling is an hour away: only the watch on Bulk can bring this down.
    await onGateway((proxy) => proxy.append('Bulk', message('pushed', PUSHED_MARKER)));
    await waitFor(
      'the pushed message in the open session',
      async () => {
        await client.noop();
        return client.mailbox !== false && client.mailbox.exists === BULK + 1;
      },
      60_000,
    );
    const pushed = await client.fetchOne(String(BULK + 1), { source: true });
    expect(pushed === false ? '' : pushed.source!.toString('utf8')).toContain(PUSHED_MARKER);

    // And a special-use folder no client has open (Sent: watched by priority).
    const sentBefore = bridge.sync.mailboxes.get('Sent')!.records().length;
    await onGateway((proxy) => proxy.append('Sent', message('sent elsewhere', 'From a phone')));
    await waitFor(
      'the message filed in Sent by another device',
      () => bridge.sync.mailboxes.get('Sent')!.records().length === sentBefore + 1,
      60_000,
    );
  });

  it('ends the sessions of a mailbox that got a new UIDVALIDITY or was deleted on the gateway (* BYE)', async () => {
    const renewed = await ImaplibSession.open(
      bridge.imapPort,
      ADDRESS,
      bridge.account.localPassword,
      'Renewed',
    );
    sessions.push(renewed.session);
    expect(renewed.selected.exists).toBe(1);
    const gone = await ImaplibSession.open(
      bridge.imapPort,
      ADDRESS,
      bridge.account.localPassword,
      'Gone',
    );
    sessions.push(gone.session);
    const oldValidity = bridge.sync.mailboxes.get('Renewed')!.state.uidValidity;

    await onGateway(async (proxy) => {
      await proxy.mailboxDelete('Renewed');
      await proxy.mailboxCreate('Renewed');
      await proxy.append('Renewed', message('renewed again', 'After the new UIDVALIDITY'));
      await proxy.mailboxDelete('Gone');
    });
    await bridge.sync.syncOnce();

    expect(await renewed.session.send('noop')).toEqual({
      event: 'bye',
      text: 'Renewed changed on the gateway (new UIDVALIDITY); select it again to see it',
    });
    expect(await gone.session.send('noop')).toEqual({
      event: 'bye',
      text: 'Gone was deleted on the gateway',
    });

    // Selected again, the mailbox is the gateway's new one, with its new message.
    const upstreamValidity = await onGateway(async (proxy) => {
      const status = await proxy.status('Renewed', { uidValidity: true });
      return status === false ? -1 : Number(status.uidValidity);
    });
    expect(upstreamValidity).not.toBe(oldValidity);
    const again = await withMailbox(client, 'Renewed', async () => ({
      validity: client.mailbox === false ? -1 : Number(client.mailbox.uidValidity),
      messages: (await client.fetchAll('1:*', { source: true })).map((m) =>
        m.source!.toString('utf8'),
      ),
    }));
    expect(again.validity).toBe(upstreamValidity);
    expect(again.messages).toHaveLength(1);
    expect(again.messages[0]).toContain('After the new UIDVALIDITY');
    const list = await client.list();
    expect(list.map((m) => m.path)).not.toContain('Gone');
  });

  it('keeps the cache of a folder renamed on the gateway (recognised by its UIDVALIDITY): nothing fetched again', async () => {
    const bulk = bridge.sync.mailboxes.get('Bulk')!;
    const uids = bulk.records().map((r) => r.uid);
    await onGateway((proxy) => proxy.mailboxRename('Bulk', 'Bulky'));
    await bridge.sync.syncOnce();
    // The same local mailbox under its new name, with its messages: not a new one refetched.
    expect(bridge.sync.mailboxes.get('Bulky')).toBe(bulk);
    expect(bridge.sync.mailboxes.has('Bulk')).toBe(false);
    expect(bulk.records().map((r) => r.uid)).toEqual(uids);
    const last = await withMailbox(client, 'Bulky', () =>
      client.fetchOne(String(uids.length), { source: true }),
    );
    expect(last === false ? '' : last.source!.toString('utf8')).toContain(PUSHED_MARKER);

    // Saved under the new name: a restart's first sync fetches none of it again.
    await bridge.close();
    const fetched: string[] = [];
    bridge = await runBridge({
      ...world.options(join(dir.path, 'bridge-data'), false),
      pollMs: 3_600_000,
      onProgress: ({ mailbox }) => fetched.push(mailbox),
    });
    expect(
      bridge.sync.mailboxes
        .get('Bulky')!
        .records()
        .map((r) => r.uid),
    ).toEqual(uids);
    expect(bridge.sync.mailboxes.has('Bulk')).toBe(false);
    expect(fetched).not.toContain('Bulky');
    expect(
      bridge.sync.mailboxes
        .get('Bulky')!
        .read(uids[uids.length - 1]!)
        .toString('utf8'),
    ).toContain(PUSHED_MARKER);
  });
});
