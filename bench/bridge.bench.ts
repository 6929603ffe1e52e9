/**
 * The device bridge (docs/bridge.md) against a real gateway (`recrypt init` + `recrypt
 * start`, a user with a device from `device add`), with BRIDGE_BENCH_MESSAGES messages
 * (default 1000, about 3 KiB each) APPENDed through the proxy, which encrypts them (on
 * several connections at once, so 10,000 are set up in minutes):
 *  - the first sync: wall time, CPU time of the bridge (this process) and of the
 *    gateway's processes, the bridge's RSS (peak sampled every 50 ms) while it fetches,
 *    decrypts and caches every message, and the size of its state journal;
 *  - FETCH of every whole message, side by side in one run (harness.ts: interleaved
 *    rounds): imapflow through the gateway's proxy (recrypted for the device, still
 *    encrypted) and through the bridge (decrypted, from its sealed cache).
 *  - a later sync round when nothing changed, and one after a flag changed on the gateway,
 *    asking only for what changed (CHANGEDSINCE) side by side with UID FLAGS of all;
 *  - a bulk UID MOVE of 300 messages to another folder and back, proxy and bridge.
 * No ordering is asserted between the two: they do different work (the proxy recrypts,
 * the bridge opens AES-GCM files), and which wins is what the figures are for.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { runBridge, type RunningBridge } from '../src/bridge/bridge.js';
import { enrolWithDevice, makeGateway } from '../test/helpers/submission-world.js';
import { tempDir } from '../test/helpers/tmp.js';
import { compare, formatResults, ratio, timeMs } from './harness.js';

const ADDRESS = 'alice@example.org';
const P12_PASSWORD = 'bench-p12-password';
const APPEND_CONNECTIONS = 6;
/** Messages moved to another folder and back in the bulk MOVE comparison. */
const MOVED = 300;

function message(i: number): Buffer {
  const line = `Line of the message body number ${i}, repeated to give it some size.\r\n`;
  return Buffer.from(
    `From: bob@sender.example\r\nTo: ${ADDRESS}\r\nSubject: bench ${i}\r\n` +
      `Message-ID: <bench-${i}@sender.example>\r\n\r\n${line.repeat(40)}`,
  );
}

async function fetchAll(client: ImapFlow): Promise<number> {
  const lock = await client.getMailboxLock('Bench');
  try {
    const messages = await client.fetchAll('1:*', { source: true });
    return messages.length;
  } finally {
    lock.release();
  }
}

/** CPU time (user + system) of every process in process group `pgid` so far, from /proc (Linux). */
function groupCpuMs(pgid: number): number {
  const tick = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // Fields after the command name (which may hold spaces): state ppid pgrp … utime(14) stime(15).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * tick;
}

/**
 * APPENDs messages 1…count on several connections at once: one at a time, the set-up of
 * 10,000 messages waits on every round trip and on the proxy's encryption one by one.
 * The order of UIDs does not matter to what is measured.
 */
async function appendAll(count: number, connect: () => Promise<ImapFlow>): Promise<void> {
  let next = 1;
  await Promise.all(
    Array.from({ length: APPEND_CONNECTIONS }, async () => {
      const client = await connect();
      for (let i = next++; i <= count; i = next++) await client.append('Bench', message(i));
      await client.logout();
    }),
  );
}

export async function run(): Promise<void> {
  const count = Number(process.env['BRIDGE_BENCH_MESSAGES'] ?? 1000);
  const dir = tempDir('recrypt-bench-bridge-');
  const gateway = await makeGateway(dir.path, 'gateway', () => ({}));
  let bridge: RunningBridge | undefined;
  const clients: ImapFlow[] = [];
  try {
    const device = await enrolWithDevice(gateway, ADDRESS);
    const p12 = join(dir.path, 'device.p12');
    execFileSync('openssl', [
      'pkcs12',
      '-export',
      '-inkey',
      device.keyFile,
      '-in',
      device.certFile,
      '-out',
      p12,
      '-passout',
      `pass:${P12_PASSWORD}`,
    ]);
    const ca = readFileSync(gateway.certFile, 'utf8');
    const proxyOptions = () => ({
      host: '127.0.0.1',
      port: gateway.ports.imap,
      secure: true,
      tls: { ca },
      auth: { user: ADDRESS, pass: device.password },
    });
    // Clients connect when they are used: one idle through the set-up or the first sync
    // would meet imapflow's socket timeout.
    const connectProxy = async (): Promise<ImapFlow> => {
      const client = new ImapFlow({ ...proxyOptions(), logger: false });
      client.on('error', (error: Error) => console.error(`proxy client: ${error.message}`));
      clients.push(client);
      await client.connect();
      return client;
    };
    const setup = await connectProxy();
    await setup.mailboxCreate('Bench');
    await setup.logout();
    const appendStarted = process.hrtime.bigint();
    await appendAll(count, connectProxy);
    console.log(
      `set-up: ${count} messages APPENDed through the proxy (encrypted there) on ` +
        `${APPEND_CONNECTIONS} connections in ${(Number(process.hrtime.bigint() - appendStarted) / 1e9).toFixed(1)} s`,
    );

    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 50);
    const gatewayGroup = gateway.process.child.pid!;
    const gatewayCpuBefore = groupCpuMs(gatewayGroup);
    const cpuBefore = process.cpuUsage();
    const wall = await timeMs(async () => {
      bridge = await runBridge({
        dataDir: join(dir.path, 'bridge'),
        passphrase: 'bench passphrase',
        imapPort: 0,
        imapsPort: 0,
        pollMs: 3_600_000,
        setup: {
          p12: new Uint8Array(readFileSync(p12)),
          p12Password: P12_PASSWORD,
          address: ADDRESS,
          upstream: {
            host: '127.0.0.1',
            port: gateway.ports.imap,
            tls: 'implicit',
            ca,
            user: ADDRESS,
            password: device.password,
          },
        },
      });
    });
    const cpu = process.cpuUsage(cpuBefore);
    const gatewayCpu = groupCpuMs(gatewayGroup) - gatewayCpuBefore;
    clearInterval(sampler);
    const rssAfter = process.memoryUsage().rss;
    const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
    console.log(
      `first sync of ${count} messages: ${wall.toFixed(0)} ms wall, ` +
        `${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU in the bridge (this process, incl. one scrypt), ` +
        `${gatewayCpu.toFixed(0)} ms CPU in the gateway's processes`,
    );
    console.log(
      `  RSS of the bridge: ${mib(rssBefore)} MiB before, peak ${mib(rssPeak)} MiB, ` +
        `${mib(rssAfter)} MiB after; state journal ${mib(statSync(join(dir.path, 'bridge', 'cache', 'state.log')).size)} MiB`,
    );

    const proxy = await connectProxy();
    const local = new ImapFlow({
      host: '127.0.0.1',
      port: bridge!.imapsPort!,
      secure: true,
      tls: { ca: readFileSync(bridge!.certFile!, 'utf8') },
      auth: { user: ADDRESS, pass: bridge!.account.localPassword },
      logger: false,
    });
    local.on('error', (error: Error) => console.error(`bridge client: ${error.message}`));
    clients.push(local);
    await local.connect();
    const expectCount = (n: number) => {
      if (n !== count) throw new Error(`fetched ${n} messages, expected ${count}`);
    };
    const results = await compare(
      [
        {
          name: 'FETCH all through the proxy',
          run: () => timeMs(async () => expectCount(await fetchAll(proxy))),
        },
        {
          name: 'FETCH all through the bridge',
          run: () => timeMs(async () => expectCount(await fetchAll(local))),
        },
      ],
      { rounds: 5 },
    );
    // Later syncs: a round when nothing changed (CONDSTORE: one SELECT per mailbox) and a
    // round after another device changed one flag on the gateway: asking only for what
    // changed (CHANGEDSINCE), and UID FLAGS of every cached message (what a pass without a
    // usable modseq still does; a first sync learns its UIDs by one UID SEARCH instead).
    let flagged = false;
    const flipOnGateway = async (): Promise<void> => {
      const lock = await proxy.getMailboxLock('Bench');
      try {
        flagged = !flagged;
        if (flagged) await proxy.messageFlagsAdd('1', ['\\Flagged']);
        else await proxy.messageFlagsRemove('1', ['\\Flagged']);
      } finally {
        lock.release();
      }
    };
    const rounds = await compare(
      [
        {
          name: 'sync round, nothing changed',
          run: () => timeMs(() => bridge!.sync.syncOnce()),
        },
        {
          name: 'sync round after one flag change',
          run: async () => {
            await flipOnGateway();
            return timeMs(() => bridge!.sync.syncOnce());
          },
        },
        {
          name: 'sync round after one flag change, UID FLAGS of all (before)',
          run: async () => {
            await flipOnGateway();
            delete bridge!.sync.mailboxes.get('Bench')!.state.upstreamModseq;
            return timeMs(() => bridge!.sync.syncOnce());
          },
        },
      ],
      { rounds: 5 },
    );
    // Bulk UID MOVE of MOVED messages to another folder and back, through each; the bridge
    // is synced between two runs (untimed), so its view is the gateway's when it moves.
    const moveThereAndBack = async (client: ImapFlow): Promise<void> => {
      for (const [from, to] of [
        ['Bench', 'Moved'],
        ['Moved', 'Bench'],
      ] as const) {
        const lock = await client.getMailboxLock(from);
        try {
          const uids = (await client.search({ all: true }, { uid: true })) || [];
          const some = from === 'Bench' ? uids.slice(0, MOVED) : uids;
          const moved = await client.messageMove(some.join(','), to, { uid: true });
          if (moved === false || moved.uidMap?.size !== MOVED)
            throw new Error(`moved ${moved === false ? 0 : moved.uidMap?.size} of ${MOVED}`);
        } finally {
          lock.release();
        }
      }
    };
    const setupMoved = await connectProxy();
    await setupMoved.mailboxCreate('Moved');
    await setupMoved.logout();
    await bridge!.sync.syncOnce();
    const moves = await compare(
      [
        {
          name: `UID MOVE of ${MOVED} and back through the proxy`,
          run: async () => {
            const ms = await timeMs(() => moveThereAndBack(proxy));
            await bridge!.sync.syncOnce();
            return ms;
          },
        },
        {
          name: `UID MOVE of ${MOVED} and back through the bridge`,
          run: async () => {
            const ms = await timeMs(() => moveThereAndBack(local));
            await bridge!.sync.syncOnce();
            return ms;
          },
        },
      ],
      { rounds: 3 },
    );
    console.log(`bulk moves, wall time:`);
    console.log(formatResults(moves, 'ms'));
    console.log(
      `  bridge / proxy: ${ratio(moves, `UID MOVE of ${MOVED} and back through the bridge`, `UID MOVE of ${MOVED} and back through the proxy`)}`,
    );
    console.log(`later sync rounds with ${count} messages, wall time:`);
    console.log(formatResults(rounds, 'ms'));
    console.log(`FETCH BODY[] of ${count} messages, wall time:`);
    console.log(formatResults(results, 'ms'));
    console.log(
      `  bridge / proxy: ${ratio(results, 'FETCH all through the bridge', 'FETCH all through the proxy')}`,
    );
  } finally {
    for (const client of clients) await client.logout().catch(() => undefined);
    await bridge?.close();
    await gateway.process.stop(10_000);
    dir.remove();
  }
}
