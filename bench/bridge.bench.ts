/**
 * The device bridge (docs/bridge.md) against a real gateway (`recrypt init` + `recrypt
 * start`, a user with a device from `device add`), with BRIDGE_BENCH_MESSAGES messages
 * (default 1000, about 3 KiB each) APPENDed through the proxy, which encrypts them:
 *  - the first sync: wall time, this process's CPU time and RSS growth while the bridge
 *    fetches, decrypts and caches every message (the gateway runs in its own process);
 *  - FETCH of every whole message, side by side in one run (harness.ts: interleaved
 *    rounds): imapflow through the gateway's proxy (recrypted for the device, still
 *    encrypted) and through the bridge (decrypted, from its sealed cache).
 * No ordering is asserted between the two: they do different work (the proxy recrypts,
 * the bridge opens AES-GCM files), and which wins is what the figures are for.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { runBridge, type RunningBridge } from '../src/bridge/bridge.js';
import { enrolWithDevice, makeGateway } from '../test/helpers/submission-world.js';
import { tempDir } from '../test/helpers/tmp.js';
import { compare, formatResults, ratio, timeMs } from './harness.js';

const ADDRESS = 'alice@example.org';
const P12_PASSWORD = 'bench-p12-password';

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
    const proxy = new ImapFlow({
      host: '127.0.0.1',
      port: gateway.ports.imap,
      secure: true,
      tls: { ca },
      auth: { user: ADDRESS, pass: device.password },
      logger: false,
    });
    clients.push(proxy);
    await proxy.connect();
    await proxy.mailboxCreate('Bench');
    for (let i = 1; i <= count; i++) await proxy.append('Bench', message(i));

    const rssBefore = process.memoryUsage().rss;
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
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    console.log(
      `first sync of ${count} messages: ${wall.toFixed(0)} ms wall, ` +
        `${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU (bridge process, incl. one scrypt), ` +
        `RSS +${(rssGrowth / 1048576).toFixed(1)} MiB`,
    );

    const local = new ImapFlow({
      host: '127.0.0.1',
      port: bridge!.imapsPort!,
      secure: true,
      tls: { ca: readFileSync(bridge!.certFile!, 'utf8') },
      auth: { user: ADDRESS, pass: bridge!.account.localPassword },
      logger: false,
    });
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
