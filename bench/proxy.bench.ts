/**
 * The IMAP proxy against its limit, the store itself: FETCH BODY[] of 1,000 × 20 KB and
 * 20 × 5 MB S/MIME messages straight from Dovecot and through the proxy, with the same
 * client (imapflow), a new session per pass, all paths interleaved over BENCH_ROUNDS
 * rounds (harness.ts; default 5, 3 for 5 MB): the identity relay, the proxy without the
 * point cache (every fetch multiplies: the figure before the cache), the proxy's first
 * fetch (cache emptied before each pass), its first fetch after delivery (plans emptied
 * before each pass, the points and BODY[] plans the MX side computes at delivery kept:
 * src/imap/delivered-points.ts, delivered-plans.ts) and its repeat fetch (cache warm).
 * Ratios are proxy/direct wall time, median and best (goal: ≤ 1.3× for 20 KB, ≤ 1.1× for 5 MB);
 * a path through the proxy faster than direct fails the bench. Then the rewriter's CPU
 * per message with no sockets, and memory per idle TLS connection.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ImapFlow } from 'imapflow';
import { ensureTlsMaterial } from '../src/config/tls.js';
import { recryptTransform } from '../src/imap/adapters/recrypt-transform.js';
import { startImapProxy } from '../src/imap/index.js';
import { PlanCache, type PlanLookup } from '../src/imap/plan-cache.js';
import { keysFingerprint, liveFingerprint } from '../src/imap/plan-codec.js';
import { PointCache, TieredPlans } from '../src/imap/point-cache.js';
import { ResponseRewriter } from '../src/imap/response-rewriter.js';
import { wrapMessage } from '../src/recrypt/smime.js';
import { planRecrypt } from '../src/recrypt/transform.js';
import { startDovecot } from '../test/helpers/dovecot.js';
import {
  BenchSanityError,
  compare,
  expectNotFaster,
  median,
  formatResults,
  ratio,
  SanityChecks,
  timeMs,
  type BenchPath,
} from './harness.js';
import { MemoryDirectory } from '../test/helpers/proxy-directory.js';
import { makeTestUser } from '../test/helpers/proxy-pki.js';
import { tempDir } from '../test/helpers/tmp.js';

const childScript = join(
  fileURLToPath(new URL('.', import.meta.url)),
  '..',
  'test',
  'helpers',
  'proxy-idle-child.ts',
);

function original(size: number, seed: number): Buffer {
  const head = Buffer.from(`From: bob@example.org\r\nSubject: bench ${seed}\r\n\r\n`);
  const body = Buffer.alloc(size - head.length);
  for (let i = 0; i < body.length; i++) body[i] = i % 78 === 77 ? 10 : 32 + ((i * 7 + seed) % 94);
  return Buffer.concat([head, body]);
}

/** One session: connect and open the mailbox untimed, then the FETCH timed (ms). */
async function timeFetch(make: () => ImapFlow, mailbox: string, expected: number): Promise<number> {
  const client = make();
  await client.connect();
  try {
    await client.mailboxOpen(mailbox, { readOnly: true });
    let count = 0;
    const ms = await timeMs(async () => {
      for await (const message of client.fetch('1:*', { source: true })) {
        if ((message.source?.length ?? 0) > 0) count++;
      }
    });
    if (count !== expected) throw new Error(`${mailbox}: fetched ${count} of ${expected} messages`);
    return ms;
  } finally {
    await client.logout();
  }
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

export async function run(): Promise<void> {
  const dir = tempDir('bench-proxy-');
  const dovecot = await startDovecot();
  try {
    const user = await makeTestUser(dir.path, 'bench@example.org', 1);
    const device = user.devices[0]!;
    const directory = new MemoryDirectory();
    directory.addUser(user);
    const tls = await ensureTlsMaterial(dir.path);
    const common = {
      host: '127.0.0.1',
      port: 0,
      starttlsPort: 0,
      allowPlaintextOnLoopback: true,
      tls: { key: tls.key, cert: tls.cert },
      upstream: { host: '127.0.0.1', port: dovecot.imapPort, tls: false },
      master: { user: dovecot.masterUser, password: dovecot.masterPassword },
      directory,
    };
    // Before the point cache: every fetch plans and multiplies.
    const noCache = await startImapProxy(common);
    // First fetch: a point cache emptied before every timed pass. Repeat: one kept warm.
    const firstCache = new PointCache(join(dir.path, 'points-first.sqlite'));
    const warmCache = new PointCache(join(dir.path, 'points-warm.sqlite'));
    const first = await startImapProxy({ ...common, pointCache: firstCache });
    // First fetch after delivery: plans emptied before every pass, like `first`, but the
    // points computed at delivery (what adapters/points-at-delivery.ts does after the MX
    // stored a copy) are kept in another file that is never emptied.
    const afterCache = new PointCache(join(dir.path, 'points-after-delivery.sqlite'));
    const atDelivery = new PointCache(join(dir.path, 'points-at-delivery.sqlite'));
    const afterDelivery = await startImapProxy({
      ...common,
      pointCache: afterCache,
      transformFor: (keys) =>
        recryptTransform(
          keys,
          atDelivery.delivered.source(),
          atDelivery.delivered.planSource(keys),
        ),
    });
    const repeat = await startImapProxy({ ...common, pointCache: warmCache });
    // The same proxy with the identity transform: the relay's own cost, without the EC math.
    const relayOnly = await startImapProxy({
      ...common,
      transformFor: () => ({
        plan: () => ({ kind: 'unchanged', reason: 'bench' }),
        apply: (chunk) => chunk,
      }),
    });
    const direct = (): ImapFlow =>
      new ImapFlow({
        host: '127.0.0.1',
        port: dovecot.imapPort,
        secure: false,
        auth: {
          user: dovecot.masterUser,
          pass: dovecot.masterPassword,
          authzid: user.address,
          loginMethod: 'AUTH=PLAIN',
        } as never,
        logger: false,
      });
    // Plain on loopback like the direct baseline, so the ratio is the proxy's own cost.
    const viaProxy = (server: typeof relayOnly): ImapFlow =>
      new ImapFlow({
        host: '127.0.0.1',
        port: server.ports.starttls!,
        secure: false,
        doSTARTTLS: false,
        auth: { user: user.address, pass: device.password },
        logger: false,
      });

    // Load the store (APPEND straight to Dovecot; messages made by the recrypt core).
    const loader = direct();
    await loader.connect();
    const sets = [
      { mailbox: 'Small', count: 1000, size: 20 * 1024 },
      { mailbox: 'Large', count: 20, size: 5 * 1024 * 1024 },
    ];
    const samples: Buffer[] = [];
    /** CPU µs per message of computing its point and plan at delivery (one device). */
    const deliveryCpu: number[] = [];
    for (const set of sets) {
      await loader.mailboxCreate(set.mailbox);
      for (let i = 0; i < set.count; i++) {
        const message = Buffer.from(wrapMessage(original(set.size, i), user.group.certDer));
        if (set.mailbox === 'Small' && samples.length < 1000) samples.push(message);
        // What the MX's after-store hook computes for the device (off the SMTP reply).
        const start = process.cpuUsage();
        const prefix = message.subarray(0, 16384);
        const plan = planRecrypt(
          prefix,
          'message',
          device.keys,
          atDelivery.delivered.recorder(user.address, device.deviceId),
        );
        if (plan.kind === 'edits')
          atDelivery.delivered.putPlan(
            user.address,
            device.deviceId,
            keysFingerprint(device.keys),
            prefix,
            plan.edits,
          );
        const used = process.cpuUsage(start);
        deliveryCpu.push(used.user + used.system);
        await loader.append(set.mailbox, message);
      }
    }
    await loader.logout();

    const checks = new SanityChecks();
    console.log(
      `FETCH BODY[] (imapflow, a new session per pass, plain TCP on loopback; ${ROUNDS} rounds ` +
        'interleaved, one untimed pass of each first; ms)',
    );
    for (const set of sets) {
      const fetchVia = (make: () => ImapFlow) => () => timeFetch(make, set.mailbox, set.count);
      const small = set.size < 1e6;
      const paths: BenchPath[] = [
        { name: 'direct (Dovecot)', run: fetchVia(direct) },
        { name: 'relay (no recryption)', run: fetchVia(() => viaProxy(relayOnly)) },
        { name: 'proxy, no point cache', run: fetchVia(() => viaProxy(noCache)) },
        { name: 'proxy, repeat fetch', run: fetchVia(() => viaProxy(repeat)) },
      ];
      if (small) {
        paths.push({
          name: 'proxy, first fetch',
          run: () => {
            firstCache.clear();
            return fetchVia(() => viaProxy(first))();
          },
        });
        paths.push({
          name: 'proxy, first fetch after delivery',
          run: () => {
            afterCache.clear();
            return fetchVia(() => viaProxy(afterDelivery))();
          },
        });
      }
      const results = await compare(paths, { rounds: small ? ROUNDS : Math.min(ROUNDS, 3) });
      console.log(
        `  ${set.count} × ${set.size / 1024} KiB (goal ≤ ${small ? '1.3' : '1.1'}× direct):`,
      );
      console.log(formatResults(results, 'ms'));
      for (const path of paths.slice(1)) {
        console.log(`  ${path.name} / direct: ${ratio(results, path.name, 'direct (Dovecot)')}`);
      }
      // The one ordering that cannot break: nothing through the proxy beats the store it
      // relays. (The identity relay is no floor for a cached plan: it still collects each
      // literal's first bytes to plan from, which a cache hit skips.)
      for (const path of paths.slice(1))
        checks.check(() => expectNotFaster(results, path.name, 'direct (Dovecot)'));
    }
    console.log(
      `  point cache (repeat): ${JSON.stringify(warmCache.stats)}; (first): ${JSON.stringify(firstCache.stats)}`,
    );
    console.log(
      `  points computed at delivery: ${JSON.stringify(atDelivery.delivered.stats)}; ` +
        `plans: ${JSON.stringify(atDelivery.delivered.plans.stats)}; ` +
        `CPU at delivery per message and device: median ${median(deliveryCpu).toFixed(0)} µs`,
    );
    // Every first fetch after delivery took its points from there: none multiplied.
    checks.check(() => {
      if (atDelivery.delivered.stats.misses !== 0)
        throw new BenchSanityError(
          `first fetch after delivery multiplied ${atDelivery.delivered.stats.misses} times`,
        );
    });

    // CPU of the rewriter alone: a FETCH transcript of the 1,000 small messages.
    const transcript = Buffer.concat(
      samples.flatMap((m, i) => [
        Buffer.from(`* ${i + 1} FETCH (UID ${i + 1} BODY[] {${m.length}}\r\n`),
        m,
        Buffer.from(')\r\n'),
      ]),
    );
    const cpu = (
      transform: ConstructorParameters<typeof ResponseRewriter>[0]['transform'],
      cache: PlanLookup = new PlanCache(),
    ): number => {
      const rewriter = new ResponseRewriter(
        { transform, cache, selection: () => ({ mailbox: 'Small', uidValidity: 1 }) },
        () => undefined,
      );
      const input = Buffer.from(transcript);
      const start = process.cpuUsage();
      for (let offset = 0; offset < input.length; offset += 65536)
        void rewriter.write(input.subarray(offset, offset + 65536));
      const used = process.cpuUsage(start);
      return (used.user + used.system) / samples.length;
    };
    const identity = {
      plan: () => ({ kind: 'unchanged' as const, reason: 'bench' }),
      apply: (chunk: Uint8Array) => chunk,
    };
    const memoryPoints = new PointCache(':memory:');
    const scope = {
      owner: user.address,
      device: device.deviceId,
      storeUser: user.address,
      fingerprint: liveFingerprint(device.keys),
    };
    const cpuResults = await compare(
      [
        { name: 'parsing only', run: () => cpu(identity) },
        { name: 'recrypting, no cache', run: () => cpu(recryptTransform(device.keys)) },
        {
          name: 'recrypting, points from delivery',
          run: () => cpu(recryptTransform(device.keys, atDelivery.delivered.source())),
        },
        {
          name: 'recrypting, plans from delivery',
          run: () =>
            cpu(
              recryptTransform(
                device.keys,
                atDelivery.delivered.source(),
                atDelivery.delivered.planSource(device.keys),
              ),
            ),
        },
        {
          name: 'recrypting, point cache warm',
          run: () =>
            cpu(
              recryptTransform(device.keys),
              new TieredPlans(new PlanCache(), memoryPoints, scope),
            ),
        },
      ],
      { rounds: ROUNDS },
    );
    console.log('rewriter CPU per 20 KiB message, no sockets (µs):');
    console.log(formatResults(cpuResults, 'µs'));
    checks.check(() => expectNotFaster(cpuResults, 'recrypting, no cache', 'parsing only'));
    memoryPoints.close();

    // Memory per idle connection, measured in a child process running only the proxy.
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        'tsx',
        childScript,
        JSON.stringify({
          key: tls.key,
          cert: tls.cert,
          upstreamPort: dovecot.imapPort,
          master: { user: dovecot.masterUser, password: dovecot.masterPassword },
          address: user.address,
          password: 'idle-bench',
        }),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, number>> =>
      JSON.parse((await lines.next()).value as string) as Record<string, number>;
    const measure = async (): Promise<Record<string, number>> => {
      child.stdin!.write('measure\n');
      return next();
    };
    const { port } = await next();
    const sockets: TLSSocket[] = [];
    const open = async (count: number, login: boolean): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const socket = tlsConnect({ host: '127.0.0.1', port: port!, rejectUnauthorized: false });
        socket.on('error', () => undefined);
        sockets.push(socket);
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        if (login) {
          socket.write(`l LOGIN ${user.address} idle-bench\r\n`);
          await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        }
      }
    };
    const base = await measure();
    await open(1000, false);
    const idle = await measure();
    // Dovecot allows 10 sessions per user and IP: logged-in sessions are measured by tens.
    await open(9, true);
    const loggedIn = await measure();
    const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
    console.log(
      `memory per idle TLS connection (proxy process alone, after GC): ${kib((idle.rss! - base.rss!) / 1000)} KiB RSS, ` +
        `${kib((idle.heap! + idle.external! - base.heap! - base.external!) / 1000)} KiB heap+external; ` +
        `per logged-in idle session (with its upstream connection): ${kib((loggedIn.rss! - idle.rss!) / 9)} KiB RSS ` +
        `(${idle.sessions} then ${loggedIn.sessions} sessions)`,
    );
    for (const socket of sockets) socket.destroy();
    child.stdin!.write('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
    for (const server of [noCache, first, afterDelivery, repeat, relayOnly]) await server.close();
    firstCache.close();
    afterCache.close();
    atDelivery.close();
    warmCache.close();
    checks.throwIfAny();
  } finally {
    await dovecot.remove();
    dir.remove();
  }
}
