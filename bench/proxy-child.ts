/**
 * The proxies bench/proxy.bench.ts measures, in a process of their own: in deployment the
 * proxy is its own process, and in the bench's process it would share one event loop with
 * the client it is measured by (the client's parsing and the proxy's relaying would take
 * turns on one thread, while Dovecot, the baseline, runs beside the client). So the
 * comparison is Dovecot's processes against this one, with the same client.
 *
 * Beside the proxies, a bare TCP pipe to Dovecot (no IMAP at all: each connection piped
 * both ways with Node's streams): a second hop through the kernel and one Node event
 * loop, relayed the usual way, against which the proxies' own read path shows.
 *
 * Configuration is one JSON argument (ChildConfig). The first stdout line is the ports
 * (JSON: each proxy's, and `pipe`); then every stdin line is a command answered by one JSON line:
 *   `clear first` / `clear after`: empties that proxy's point cache (before a first-fetch pass)
 *   `stats`: the caches' counters
 *   `exit`: closes everything and exits.
 */
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { recryptTransform } from '../src/imap/adapters/recrypt-transform.js';
import { startImapProxy, type ImapProxy } from '../src/imap/index.js';
import { PointCache } from '../src/imap/point-cache.js';
import type { DeviceRecryptKeys } from '../src/recrypt/types.js';
import { MemoryDirectory } from '../test/helpers/proxy-directory.js';
import type { TestUser } from '../test/helpers/proxy-pki.js';

/** A device's keys in JSON: hex for bytes and scalars. */
export interface SerialisedKeys {
  deviceId: string;
  wrapEncoding: DeviceRecryptKeys['wrapEncoding'];
  keys: [string, string][];
}

export interface ChildConfig {
  dir: string;
  key: string;
  cert: string;
  upstreamPort: number;
  master: { user: string; password: string };
  user: {
    address: string;
    groupCert: string;
    device: { deviceId: string; password: string; keys: SerialisedKeys };
  };
  /** The point cache file the bench filled at delivery (closed by the bench before). */
  atDeliveryPath: string;
}

export type ProxyName = 'relay' | 'noCache' | 'first' | 'afterDelivery' | 'repeat';

/** The ports of the child's listeners: each proxy's, and the bare TCP pipe's. */
export type ChildPorts = Record<ProxyName | 'pipe', number>;

export function serialiseKeys(keys: DeviceRecryptKeys): SerialisedKeys {
  return {
    deviceId: Buffer.from(keys.deviceId).toString('hex'),
    wrapEncoding: keys.wrapEncoding,
    keys: [...keys.keys].map(([group, rk]) => [group, rk.toString(16)]),
  };
}

function parseKeys(keys: SerialisedKeys): DeviceRecryptKeys {
  return {
    deviceId: Buffer.from(keys.deviceId, 'hex'),
    wrapEncoding: keys.wrapEncoding,
    keys: new Map(keys.keys.map(([group, rk]) => [group, BigInt(`0x${rk}`)])),
  };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const { device } = config.user;
  const user: TestUser = {
    address: config.user.address,
    ownerCa: new Uint8Array(0),
    group: { certDer: Buffer.from(config.user.groupCert, 'base64'), certPath: '', keyPath: '' },
    devices: [
      {
        ...device,
        keys: parseKeys(device.keys),
        certDer: new Uint8Array(0),
        certPath: '',
        keyPath: '',
      },
    ],
  };
  const directory = new MemoryDirectory();
  directory.addUser(user);
  const common = {
    host: '127.0.0.1',
    port: 0,
    starttlsPort: 0,
    allowPlaintextOnLoopback: true,
    tls: { key: config.key, cert: config.cert },
    upstream: { host: '127.0.0.1', port: config.upstreamPort, tls: false },
    master: config.master,
    directory,
  };
  const firstCache = new PointCache(join(config.dir, 'points-first.sqlite'));
  const warmCache = new PointCache(join(config.dir, 'points-warm.sqlite'));
  const afterCache = new PointCache(join(config.dir, 'points-after-delivery.sqlite'));
  const atDelivery = new PointCache(config.atDeliveryPath);
  const proxies: Record<ProxyName, ImapProxy> = {
    // The proxy with the identity transform: the relay's own cost, without the EC math.
    relay: await startImapProxy({
      ...common,
      transformFor: () => ({
        plan: () => ({ kind: 'unchanged', reason: 'bench' }),
        apply: (chunk) => chunk,
      }),
    }),
    // Before the point cache: every fetch plans and multiplies.
    noCache: await startImapProxy(common),
    // First fetch: a point cache emptied before every timed pass (`clear first`).
    first: await startImapProxy({ ...common, pointCache: firstCache }),
    // First fetch after delivery: its plans emptied before every pass (`clear after`), the
    // points and BODY[] plans computed at delivery (another file, never emptied) kept.
    afterDelivery: await startImapProxy({
      ...common,
      pointCache: afterCache,
      transformFor: (keys) =>
        recryptTransform(
          keys,
          atDelivery.delivered.source(),
          atDelivery.delivered.planSource(keys),
        ),
    }),
    // Repeat fetch: a point cache kept warm.
    repeat: await startImapProxy({ ...common, pointCache: warmCache }),
  };
  const pipe = await startTcpPipe(config.upstreamPort);
  const ports = {
    ...Object.fromEntries(
      Object.entries(proxies).map(([name, proxy]) => [name, proxy.ports.starttls]),
    ),
    pipe: (pipe.address() as { port: number }).port,
  };
  process.stdout.write(`${JSON.stringify(ports)}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'exit') break;
    if (line === 'clear first') firstCache.clear();
    else if (line === 'clear after') afterCache.clear();
    const stats =
      line === 'stats'
        ? {
            repeat: warmCache.stats,
            first: firstCache.stats,
            delivered: atDelivery.delivered.stats,
            deliveredPlans: atDelivery.delivered.plans.stats,
          }
        : {};
    process.stdout.write(`${JSON.stringify({ ok: line, ...stats })}\n`);
  }
  pipe.close();
  for (const proxy of Object.values(proxies)) await proxy.close();
  for (const cache of [firstCache, warmCache, afterCache, atDelivery]) cache.close();
  process.exit(0);
}

/** Each connection piped both ways to the upstream port, with backpressure, nothing else. */
async function startTcpPipe(upstreamPort: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(upstreamPort, '127.0.0.1');
    // As the proxy's sockets: Nagle's algorithm would hold a response's last segment.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

// Imported by the bench for its types and serialiseKeys; run as the child otherwise.
if (process.argv[1]?.endsWith('proxy-child.ts')) await main();
