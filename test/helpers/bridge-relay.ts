/**
 * A TCP relay to the gateway's IMAP port that counts the bytes coming back (TLS and all):
 * the bridge's connection runs through it, so what a sync costs is measured, on the wire
 * and by the sync's own counters (test/bridge/live-sync.test.ts, "later syncs").
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { RunningBridge } from '../../src/bridge/bridge.js';

export interface CountingRelay {
  port: number;
  /** Bytes the gateway sent so far, over every relayed connection. */
  fromGateway(): number;
  close(): Promise<void>;
}

export async function startCountingRelay(target: number): Promise<CountingRelay> {
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

/** What one mailbox sync cost: the sync's counters (src/bridge/sync-plan.ts) and bytes from the gateway. */
export interface SyncCost {
  incremental: number;
  full: number;
  /** FETCH responses with flags. */
  responses: number;
  /** UID SEARCHes of the full pass. */
  searches: number;
  bytes: number;
}

/** One sync of `mailbox` by `bridge` (whose connection runs through `relay`), and its cost. */
export async function measuredSync(
  bridge: RunningBridge,
  relay: CountingRelay,
  mailbox: string,
): Promise<SyncCost> {
  const before = { ...bridge.sync.stats };
  const bytes = relay.fromGateway();
  await bridge.sync.syncMailbox(bridge.sync.mailboxes.get(mailbox)!);
  const after = bridge.sync.stats;
  return {
    incremental: after.incremental - before.incremental,
    full: after.full - before.full,
    responses: after.flagResponses - before.flagResponses,
    searches: after.uidSearches - before.uidSearches,
    bytes: relay.fromGateway() - bytes,
  };
}
