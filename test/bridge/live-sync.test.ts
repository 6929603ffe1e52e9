/**
 * The bridge while the gateway changes under it (docs/bridge.md, "While it runs"), with
 * real parts: a real gateway (test/helpers/bridge-world.ts), imapflow and Python's
 * imaplib as the clients. Clients are served while the first sync runs and see the
 * messages arrive; changes in folders other than INBOX come down by IDLE (no polling:
 * the poll interval is an hour), on a bounded number of watches; a mailbox that gets a
 * new UIDVALIDITY or is deleted on the gateway ends the sessions that have it selected
 * with `* BYE`, rather than showing them an emptied mailbox.
 *
 * Later syncs ask the gateway only for what changed (src/bridge/README.md, "Sync"): the
 * gateway's proxy relays CONDSTORE and QRESYNC, so a flag change, an expunge and a new
 * message made by another device come down with `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE
 * n VANISHED)`: two FETCH responses, not one per message. That bridge's connection runs
 * through a TCP relay that counts the bytes the gateway sends
 * (test/helpers/bridge-relay.ts), so the same sync done as a full pass (every UID's
 * flags) is compared on the wire, in the same run. Without QRESYNC, an expunge is found by
 * the count: the full pass runs then, and asks only which UIDs exist (`UID SEARCH`,
 * ESEARCH), as at a first sync; without CONDSTORE it fetches the flags of the known
 * messages and searches only above them.
 */
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import type { Upstream } from '../../src/bridge/upstream.js';
import { measuredSync, startCountingRelay, type CountingRelay } from '../helpers/bridge-relay.js';
import {
  ADDRESS,
  bridgeClient,
  fillMailbox,
  plainMessage,
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
  await fillMailbox(world, 'Bulk', BULK);
  await onGateway(async (proxy) => {
    for (const name of ['Renewed', 'Gone']) await proxy.mailboxCreate(name);
    await proxy.append('Renewed', plainMessage('renewed', 'Before the new UIDVALIDITY'));
    await proxy.append('Gone', plainMessage('gone', 'In a folder deleted later'));
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
    await onGateway((proxy) => proxy.append('Bulk', plainMessage('pushed', PUSHED_MARKER)));
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
    await onGateway((proxy) =>
      proxy.append('Sent', plainMessage('sent elsewhere', 'From a phone')),
    );
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
      await proxy.append('Renewed', plainMessage('renewed again', 'After the new UIDVALIDITY'));
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

const MANY = 150;

/** The bridge whose syncs of Many are counted, through `relay`. */
let measured: RunningBridge;
let relay: CountingRelay;

/** `work` with Many selected, as another device. */
const onMany = <T>(work: (proxy: ImapFlow) => Promise<T>): Promise<T> =>
  onGateway((proxy) => withMailbox(proxy, 'Many', () => work(proxy)));

const syncMany = () => measuredSync(measured, relay, 'Many');

const flagsOf = (uid: number): string[] | undefined =>
  measured.sync.mailboxes.get('Many')!.message(uid)?.flags;

describe('later syncs of the bridge', () => {
  beforeAll(async () => {
    // The bridge above has done its part: this one alone syncs from here on.
    await bridge.close();
    await fillMailbox(world, 'Many', MANY);
    relay = await startCountingRelay(world.gateway.ports.imap);
    const options = world.options(join(dir.path, 'bridge-measured'), true);
    measured = await runBridge({
      ...options,
      setup: { ...options.setup!, upstream: { ...options.setup!.upstream, port: relay.port } },
      // No watches and no polling: the test decides when Many is synced.
      watches: 0,
      pollMs: 3_600_000,
    });
  }, 300_000);

  afterAll(async () => {
    await measured?.close();
    await relay?.close();
  });

  it('ask only for what changed, and still get another device’s flag change, expunge and new message', async () => {
    expect(measured.sync.mailboxes.get('Many')!.records()).toHaveLength(MANY);
    // The first sync asked which UIDs exist, not every message's flags: those came with
    // the messages.
    expect(measured.sync.stats).toMatchObject({ flagResponses: 0 });
    expect(measured.sync.stats.uidSearches).toBeGreaterThanOrEqual(1);
    const client = await bridgeClient(measured);
    const seen: { flags: number[]; expunged: number } = { flags: [], expunged: 0 };
    client.on('flags', (update: { uid?: number; seq: number }) => seen.flags.push(update.seq));
    client.on('expunge', () => (seen.expunged += 1));
    const lock = await client.getMailboxLock('Many');
    try {
      // Another device: a flag, an expunge, a new message.
      await onMany(async (proxy) => {
        await proxy.messageFlagsAdd('7', ['\\Flagged'], { uid: true });
        await proxy.messageDelete('9', { uid: true });
        await proxy.append('Many', plainMessage('newcomer', 'Arrived later'));
      });
      const changes = await syncMany();
      // One FETCH response for the flag change, one for the new message; the expunge came
      // as VANISHED. No pass over every message.
      expect(changes).toMatchObject({ incremental: 1, full: 0, responses: 2 });
      expect(flagsOf(7)).toContain('\\Flagged');
      expect(flagsOf(9)).toBeUndefined();
      expect(measured.sync.mailboxes.get('Many')!.records()).toHaveLength(MANY);

      // The open session hears all three.
      await waitFor(
        'the changes in the open session',
        async () => {
          await client.noop();
          return seen.expunged === 1 && seen.flags.length > 0;
        },
        30_000,
      );
      const newest = await client.fetchOne('*', { source: true, uid: true });
      expect(newest === false ? '' : newest.source!.toString('utf8')).toContain('Arrived later');
      const seventh = await client.fetchOne('7', { flags: true }, { uid: true });
      expect(seventh === false ? [] : [...seventh.flags!]).toContain('\\Flagged');

      // Many is still selected on the bridge's connection: a flag-only change is seen
      // all the same (it is selected again to learn the new HIGHESTMODSEQ).
      await onMany((proxy) => proxy.messageFlagsAdd('10', ['\\Answered'], { uid: true }));
      const again = await syncMany();
      expect(again).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(flagsOf(10)).toContain('\\Answered');

      // Nothing changed: one SELECT, no FETCH.
      const idle = await syncMany();
      expect(idle).toMatchObject({ incremental: 0, full: 0, responses: 0 });

      // The same kind of change synced as the full pass (no mod-sequence known, as at a
      // first sync): a response per message, several times the bytes.
      await onMany((proxy) => proxy.messageFlagsAdd('11', ['\\Answered'], { uid: true }));
      const incremental = await syncMany();
      await onMany((proxy) => proxy.messageFlagsAdd('12', ['\\Answered'], { uid: true }));
      delete measured.sync.mailboxes.get('Many')!.state.upstreamModseq;
      const full = await syncMany();
      expect(incremental).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(full).toMatchObject({ incremental: 0, full: 1, responses: MANY, searches: 0 });
      expect(flagsOf(11)).toContain('\\Answered');
      expect(flagsOf(12)).toContain('\\Answered');
      expect(incremental.bytes * 3).toBeLessThan(full.bytes);

      // Without QRESYNC (as with a gateway that offers CONDSTORE alone) an expunge is not
      // named: the counts disagree and the full pass finds it by the UIDs alone (the flags
      // came with CHANGEDSINCE); a flag change alone still costs one response.
      const upstream = (measured.sync as unknown as { upstream: Upstream }).upstream;
      await upstream.run(async (c) => c.enabled.delete('QRESYNC'));
      await onMany(async (proxy) => {
        await proxy.messageFlagsAdd('13', ['\\Flagged'], { uid: true });
        await proxy.messageDelete('14', { uid: true });
      });
      const counted = await syncMany();
      expect(counted).toMatchObject({ incremental: 1, full: 1, responses: 1, searches: 1 });
      expect(flagsOf(13)).toContain('\\Flagged');
      expect(flagsOf(14)).toBeUndefined();
      await onMany((proxy) => proxy.messageFlagsAdd('15', ['\\Flagged'], { uid: true }));
      expect(await syncMany()).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(flagsOf(15)).toContain('\\Flagged');

      // Without CONDSTORE (or on NOMODSEQ) every pass is full: the known messages' flags,
      // and a UID SEARCH above the highest known UID for what is new (fetched with its
      // flags). Here as plain SEARCH, as from a gateway without ESEARCH.
      await upstream.run(async (c) => {
        c.enabled.delete('CONDSTORE');
        c.capabilities.delete('ESEARCH');
      });
      const known = measured.sync.mailboxes.get('Many')!.records().length;
      const highest = Math.max(
        ...measured.sync.mailboxes
          .get('Many')!
          .records()
          .map((r) => r.uid),
      );
      let added = 0;
      await onMany(async (proxy) => {
        await proxy.messageFlagsAdd('16', ['\\Seen'], { uid: true });
        await proxy.messageDelete('17', { uid: true });
        const appended = await proxy.append('Many', plainMessage('late', 'Late one'), [
          '\\Flagged',
        ]);
        added = appended === false ? 0 : (appended.uid ?? 0);
      });
      expect(added).toBeGreaterThan(highest);
      const plain = await syncMany();
      expect(plain).toMatchObject({ incremental: 0, full: 1, responses: known - 1, searches: 1 });
      expect(flagsOf(16)).toContain('\\Seen');
      expect(flagsOf(17)).toBeUndefined();
      expect(flagsOf(added)).toEqual(['\\Flagged']);
      expect(measured.sync.mailboxes.get('Many')!.read(added).toString('utf8')).toContain(
        'Late one',
      );
      // Nothing new above the known UIDs (UIDNEXT says so): no search.
      await onMany((proxy) => proxy.messageFlagsAdd('18', ['\\Seen'], { uid: true }));
      const flagOnly = await syncMany();
      expect(flagOnly).toMatchObject({ incremental: 0, full: 1, responses: known, searches: 0 });
      expect(flagsOf(18)).toContain('\\Seen');
    } finally {
      lock.release();
      await client.logout();
    }
  });
});
