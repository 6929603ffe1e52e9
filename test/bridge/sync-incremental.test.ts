/**
 * Later syncs ask the gateway only for what changed (src/bridge/README.md, "Sync"): with a
 * real gateway (test/helpers/bridge-world.ts) whose proxy relays CONDSTORE and QRESYNC,
 * a flag change, an expunge and a new message made by another device come down with
 * `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE n VANISHED)`: two FETCH responses, not one
 * per message. The bridge's connection to the gateway runs through a TCP relay here that
 * counts the bytes the gateway sends, so the same sync done as a full pass (every UID's
 * flags) is compared on the wire, in the same run. Without QRESYNC, an expunge is found
 * by the count: the full pass runs then, and asks only which UIDs exist (`UID SEARCH`,
 * ESEARCH), as at a first sync; without CONDSTORE it fetches the flags of the known
 * messages and searches only above them.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import type { Upstream } from '../../src/bridge/upstream.js';
import { bridgeClient, startBridgeWorld, type BridgeWorld } from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/tmp.js';

const MANY = 150;

const dir = tempDir('recrypt-bridge-incremental-');
let world: BridgeWorld;
let bridge: RunningBridge;
let relay: { port: number; fromGateway: () => number; close: () => Promise<void> };

const message = (subject: string, body: string): Buffer =>
  Buffer.from(`From: bob@sender.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

/** A TCP relay to the gateway's IMAP port that counts the bytes coming back (TLS and all). */
async function startRelay(target: number): Promise<typeof relay> {
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((local) => {
    const remote = connect(target, '127.0.0.1');
    for (const socket of [local, remote]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    remote.on('data', (chunk: Buffer) => (bytes += chunk.length));
    local.pipe(remote);
    remote.pipe(local);
    local.on('close', () => remote.destroy());
    remote.on('close', () => local.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    fromGateway: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function onGateway<T>(work: (proxy: ImapFlow) => Promise<T>): Promise<T> {
  const proxy = await world.proxyClient();
  try {
    const lock = await proxy.getMailboxLock('Many');
    try {
      return await work(proxy);
    } finally {
      lock.release();
    }
  } finally {
    await proxy.logout();
  }
}

/** One sync of Many; what it cost: sync counters and bytes from the gateway. */
async function syncMany(): Promise<{
  incremental: number;
  full: number;
  responses: number;
  searches: number;
  bytes: number;
}> {
  const before = { ...bridge.sync.stats };
  const bytes = relay.fromGateway();
  await bridge.sync.syncMailbox(bridge.sync.mailboxes.get('Many')!);
  const after = bridge.sync.stats;
  return {
    incremental: after.incremental - before.incremental,
    full: after.full - before.full,
    responses: after.flagResponses - before.flagResponses,
    searches: after.uidSearches - before.uidSearches,
    bytes: relay.fromGateway() - bytes,
  };
}

const flagsOf = (uid: number): string[] | undefined =>
  bridge.sync.mailboxes.get('Many')!.message(uid)?.flags;

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  const proxy = await world.proxyClient();
  try {
    await proxy.mailboxCreate('Many');
    for (let i = 1; i <= MANY; i++) await proxy.append('Many', message(`many ${i}`, `Many ${i}`));
  } finally {
    await proxy.logout();
  }
  relay = await startRelay(world.gateway.ports.imap);
  const options = world.options(join(dir.path, 'bridge-data'), true);
  bridge = await runBridge({
    ...options,
    setup: { ...options.setup!, upstream: { ...options.setup!.upstream, port: relay.port } },
    // No watches and no polling: the test decides when Many is synced.
    watches: 0,
    pollMs: 3_600_000,
  });
}, 300_000);

afterAll(async () => {
  await bridge?.close();
  await relay?.close();
  await world?.close();
  dir.remove();
});

describe('later syncs of the bridge', () => {
  it('ask only for what changed, and still get another device’s flag change, expunge and new message', async () => {
    expect(bridge.sync.mailboxes.get('Many')!.records()).toHaveLength(MANY);
    // The first sync asked which UIDs exist, not every message's flags: those came with
    // the messages.
    expect(bridge.sync.stats).toMatchObject({ flagResponses: 0 });
    expect(bridge.sync.stats.uidSearches).toBeGreaterThanOrEqual(1);
    const client = await bridgeClient(bridge);
    const seen: { flags: number[]; expunged: number } = { flags: [], expunged: 0 };
    client.on('flags', (update: { uid?: number; seq: number }) => seen.flags.push(update.seq));
    client.on('expunge', () => (seen.expunged += 1));
    const lock = await client.getMailboxLock('Many');
    try {
      // Another device: a flag, an expunge, a new message.
      await onGateway(async (proxy) => {
        await proxy.messageFlagsAdd('7', ['\\Flagged'], { uid: true });
        await proxy.messageDelete('9', { uid: true });
        await proxy.append('Many', message('newcomer', 'Arrived later'));
      });
      const changes = await syncMany();
      // One FETCH response for the flag change, one for the new message; the expunge came
      // as VANISHED. No pass over every message.
      expect(changes).toMatchObject({ incremental: 1, full: 0, responses: 2 });
      expect(flagsOf(7)).toContain('\\Flagged');
      expect(flagsOf(9)).toBeUndefined();
      expect(bridge.sync.mailboxes.get('Many')!.records()).toHaveLength(MANY);

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
      await onGateway((proxy) => proxy.messageFlagsAdd('10', ['\\Answered'], { uid: true }));
      const again = await syncMany();
      expect(again).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(flagsOf(10)).toContain('\\Answered');

      // Nothing changed: one SELECT, no FETCH.
      const idle = await syncMany();
      expect(idle).toMatchObject({ incremental: 0, full: 0, responses: 0 });

      // The same kind of change synced as the full pass (no mod-sequence known, as at a
      // first sync): a response per message, several times the bytes.
      await onGateway((proxy) => proxy.messageFlagsAdd('11', ['\\Answered'], { uid: true }));
      const incremental = await syncMany();
      await onGateway((proxy) => proxy.messageFlagsAdd('12', ['\\Answered'], { uid: true }));
      delete bridge.sync.mailboxes.get('Many')!.state.upstreamModseq;
      const full = await syncMany();
      expect(incremental).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(full).toMatchObject({ incremental: 0, full: 1, responses: MANY, searches: 0 });
      expect(flagsOf(11)).toContain('\\Answered');
      expect(flagsOf(12)).toContain('\\Answered');
      expect(incremental.bytes * 3).toBeLessThan(full.bytes);

      // Without QRESYNC (as with a gateway that offers CONDSTORE alone) an expunge is not
      // named: the counts disagree and the full pass finds it by the UIDs alone (the flags
      // came with CHANGEDSINCE); a flag change alone still costs one response.
      const upstream = (bridge.sync as unknown as { upstream: Upstream }).upstream;
      await upstream.run(async (c) => c.enabled.delete('QRESYNC'));
      await onGateway(async (proxy) => {
        await proxy.messageFlagsAdd('13', ['\\Flagged'], { uid: true });
        await proxy.messageDelete('14', { uid: true });
      });
      const counted = await syncMany();
      expect(counted).toMatchObject({ incremental: 1, full: 1, responses: 1, searches: 1 });
      expect(flagsOf(13)).toContain('\\Flagged');
      expect(flagsOf(14)).toBeUndefined();
      await onGateway((proxy) => proxy.messageFlagsAdd('15', ['\\Flagged'], { uid: true }));
      expect(await syncMany()).toMatchObject({ incremental: 1, full: 0, responses: 1 });
      expect(flagsOf(15)).toContain('\\Flagged');

      // Without CONDSTORE (or on NOMODSEQ) every pass is full: the known messages' flags,
      // and a UID SEARCH above the highest known UID for what is new (fetched with its
      // flags). Here as plain SEARCH, as from a gateway without ESEARCH.
      await upstream.run(async (c) => {
        c.enabled.delete('CONDSTORE');
        c.capabilities.delete('ESEARCH');
      });
      const known = bridge.sync.mailboxes.get('Many')!.records().length;
      const highest = Math.max(
        ...bridge.sync.mailboxes
          .get('Many')!
          .records()
          .map((r) => r.uid),
      );
      let added = 0;
      await onGateway(async (proxy) => {
        await proxy.messageFlagsAdd('16', ['\\Seen'], { uid: true });
        await proxy.messageDelete('17', { uid: true });
        const appended = await proxy.append('Many', message('late', 'Late one'), ['\\Flagged']);
        added = appended === false ? 0 : (appended.uid ?? 0);
      });
      expect(added).toBeGreaterThan(highest);
      const plain = await syncMany();
      expect(plain).toMatchObject({ incremental: 0, full: 1, responses: known - 1, searches: 1 });
      expect(flagsOf(16)).toContain('\\Seen');
      expect(flagsOf(17)).toBeUndefined();
      expect(flagsOf(added)).toEqual(['\\Flagged']);
      expect(bridge.sync.mailboxes.get('Many')!.read(added).toString('utf8')).toContain('Late one');
      // Nothing new above the known UIDs (UIDNEXT says so): no search.
      await onGateway((proxy) => proxy.messageFlagsAdd('18', ['\\Seen'], { uid: true }));
      const flagOnly = await syncMany();
      expect(flagOnly).toMatchObject({ incremental: 0, full: 1, responses: known, searches: 0 });
      expect(flagsOf(18)).toContain('\\Seen');
    } finally {
      lock.release();
      await client.logout();
    }
  });
});
