/**
 * `npm run bench -- cluster`: one gateway with `processes: 1` against one with
 * `processes: 2` (docs/deployment.md "Several processes on one machine"), both real
 * `recrypt start` processes running side by side, each on its own redis-server and
 * embedded store, measured in interleaved rounds (harness.ts):
 *  - proxy FETCH: 8 IMAP sessions (plaintext on loopback, so the load generator's own TLS
 *    does not eat the cores it measures) each fetching the same 20 messages of 20 KiB;
 *  - MX delivery: 8 SMTP sessions each delivering 5 messages of 20 KiB (encrypted on
 *    arrival, stored over LMTP).
 * The figure is the speed-up: the 1-process round time over the 2-process one (goal
 * ≥ 1.7× on a 2-core machine). The load generator runs on the same cores; the load
 * average printed around the bench (run.ts) says how busy the machine was.
 * Sanity: every round must move the same bytes (each FETCH returns every literal whole,
 * each message is accepted with 250), or the figures measure failures, not work.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../test/helpers/cli-run.js';
import { startRecrypt, waitFor, type Spawned } from '../test/helpers/gateway-process.js';
import { freePort } from '../test/helpers/ports.js';
import { DnssecResolver } from '../test/helpers/dnssec-resolver.js';
import { startRedis, type RedisServer } from '../test/helpers/redis.js';
import { tempDir } from '../test/helpers/tmp.js';
import { BenchSanityError, compare, formatResults, median, ratio, timeMs } from './harness.js';
import { cpuBetween, groupCpu } from './process-cpu.js';

const ADDRESS = 'bench@example.org';
const SESSIONS = 8;
const MESSAGES = 20;
const MESSAGE_BYTES = 20 * 1024;
const MX_PER_SESSION = 5;
const ROUNDS = 5;
const PASSPHRASE = 'correct horse battery staple';

interface Gateway {
  name: string;
  proc: Spawned;
  redis: RedisServer;
  ports: { smtp: number; imap: number; starttls: number; admin: number; operator: number };
  password: string;
}

/** A socket with a reader: resolves once the data since the last call satisfies `done`. */
class Conversation {
  private buffer = '';
  private waiter: (() => void) | undefined;
  private closed = false;
  constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(port: number): Promise<Conversation> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new Conversation(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `text` (if any) and waits for the reply that `done` recognises; returns it. */
  async say(text: string | undefined, done: (reply: string) => boolean): Promise<string> {
    if (text !== undefined) this.socket.write(text);
    // Only the tail can end a reply: a 400 KiB FETCH is not rescanned per chunk.
    while (!done(this.buffer.slice(-512))) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    const reply = this.buffer;
    this.buffer = '';
    return reply;
  }
}

const smtpReply = (reply: string) => /(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(reply);
const tagged = (tag: string) => (reply: string) =>
  new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n$`).test(reply);

function message(i: number): string {
  const line = 'All work and no play makes Jack a dull boy. '.repeat(2).slice(0, 76);
  const body = Array.from({ length: Math.ceil(MESSAGE_BYTES / 78) }, () => line).join('\r\n');
  return `From: <sender@bench.example>\r\nTo: <${ADDRESS}>\r\nSubject: bench ${i}\r\n\r\n${body}\r\n`;
}

/** One SMTP session delivering `count` messages; throws unless each is accepted. */
async function deliver(port: number, count: number, offset: number): Promise<void> {
  const smtp = await Conversation.open(port);
  try {
    await smtp.say(undefined, smtpReply);
    await smtp.say('EHLO bench.example\r\n', smtpReply);
    for (let i = 0; i < count; i++) {
      await smtp.say('MAIL FROM:<sender@bench.example>\r\n', smtpReply);
      await smtp.say(`RCPT TO:<${ADDRESS}>\r\n`, smtpReply);
      await smtp.say('DATA\r\n', smtpReply);
      const reply = await smtp.say(`${message(offset + i)}.\r\n`, smtpReply);
      if (!reply.startsWith('250')) throw new BenchSanityError(`MX refused: ${reply.trim()}`);
    }
    await smtp.say('QUIT\r\n', smtpReply);
  } finally {
    smtp.socket.destroy();
  }
}

/** An IMAP session logged in with INBOX selected, fetching every message per `fetch()`. */
async function imapSession(gateway: Gateway): Promise<{ fetch(): Promise<number>; close(): void }> {
  const imap = await Conversation.open(gateway.ports.starttls);
  await imap.say(undefined, (r) => r.includes('\r\n'));
  const quoted = gateway.password.replace(/[\\"]/g, (c) => `\\${c}`);
  const login = await imap.say(`a LOGIN ${ADDRESS} "${quoted}"\r\n`, tagged('a'));
  if (!/(^|\r\n)a OK/.test(login)) throw new Error(`login refused: ${login.trim()}`);
  await imap.say('b SELECT INBOX\r\n', tagged('b'));
  let n = 0;
  return {
    async fetch() {
      const tag = `f${n++}`;
      const reply = await imap.say(`${tag} FETCH 1:${MESSAGES} (BODY.PEEK[])\r\n`, tagged(tag));
      const literals = [...reply.matchAll(/BODY\[\] \{(\d+)\}\r\n/g)];
      if (literals.length !== MESSAGES || !new RegExp(`${tag} OK`).test(reply))
        throw new BenchSanityError(`FETCH returned ${literals.length} of ${MESSAGES} messages`);
      return literals.reduce((sum, m) => sum + Number(m[1]), 0);
    },
    close: () => imap.socket.destroy(),
  };
}

function readyz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function startGateway(root: string, processes: number, resolver: string): Promise<Gateway> {
  const dir = join(root, `p${processes}`);
  mkdirSync(dir);
  const redis = await startRedis();
  const ports = {
    smtp: await freePort(),
    imap: await freePort(),
    starttls: await freePort(),
    admin: await freePort(),
    operator: await freePort(),
  };
  const configFile = join(dir, 'recrypt.yaml');
  writeFileSync(
    configFile,
    [
      'dataDir: ./data',
      'logLevel: warn',
      `processes: ${processes}`,
      `keyStore: { kind: redis, url: "${redis.url}" }`,
      `smtp: { host: 127.0.0.1, port: ${ports.smtp}, resolver: "${resolver}" }`,
      `imap: { host: 127.0.0.1, port: ${ports.imap}, starttlsPort: ${ports.starttls}, allowPlaintextOnLoopback: true }`,
      `admin: { port: ${ports.admin} }`,
      `operator: { port: ${ports.operator} }`,
      `mailStore: { kind: embedded, imapPort: ${await freePort()} }`,
    ].join('\n') + '\n',
  );
  const proc = startRecrypt(['--config', configFile], dir);
  await waitFor(
    `the ${processes}-process gateway`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`gateway exited: ${proc.output()}`);
      return readyz(ports.operator);
    },
    300_000,
  );
  // The README's enrolment: user add, owner init, device add.
  const added = await runCli(['user', 'add', ADDRESS, '--config', configFile], { cwd: dir });
  const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)?.[1];
  if (token === undefined) throw new Error(`user add: ${added.stderr}`);
  const ownerDir = join(dir, 'owner');
  mkdirSync(ownerDir);
  copyFileSync(join(dir, 'data', 'tls', 'cert.pem'), join(ownerDir, 'gateway-cert.pem'));
  const env = { RECRYPT_PASSPHRASE: PASSPHRASE };
  const gatewayUrl = `https://127.0.0.1:${ports.admin}`;
  const owner = (args: string[]) => runCli(args, { cwd: ownerDir, env, timeoutMs: 240_000 });
  const init = await owner([
    'owner',
    'init',
    ADDRESS,
    '--token',
    token,
    '--gateway',
    gatewayUrl,
    '--ca',
    'gateway-cert.pem',
  ]);
  if (init.code !== 0) throw new Error(`owner init: ${init.stderr}`);
  const device = await owner(['device', 'add', 'laptop']);
  const password = /^ {2}password \(shown once\): (\S+)$/m.exec(device.stdout)?.[1];
  if (password === undefined) throw new Error(`device add: ${device.stderr}`);
  const gateway = {
    name: `${processes} process${processes > 1 ? 'es' : ''}`,
    proc,
    redis,
    ports,
    password,
  };
  await deliver(ports.smtp, MESSAGES, 0);
  return gateway;
}

/** CPU per round of each path: all the gateway's processes, and its busiest event loop. */
const cpu = new Map<
  string,
  Array<{ totalMs: number; busiestLoopMs: number; leaderMs: number; clientsMs: number }>
>();

/** Times `work` and records the CPU the gateway spent on it under `name`. */
async function measured(name: string, gateway: Gateway, work: () => Promise<unknown>) {
  const pgid = gateway.proc.child.pid!;
  const before = groupCpu(pgid);
  const clients = process.cpuUsage();
  const ms = await timeMs(work);
  const spent = cpuBetween(before, groupCpu(pgid), pgid);
  // The load generator runs on the same cores: what it spent is printed beside.
  const used = process.cpuUsage(clients);
  cpu.set(name, [
    ...(cpu.get(name) ?? []),
    { ...spent, clientsMs: (used.user + used.system) / 1000 },
  ]);
  return ms;
}

/**
 * What the CPU figures predict for an idle machine with `cores` cores: a round takes at
 * least its busiest event loop's CPU and at least all its CPU spread over every core.
 */
function cpuReport(name: string, cores: number): { line: string; projectedMs: number } {
  const samples = cpu.get(name) ?? [];
  const total = median(samples.map((s) => s.totalMs));
  const loop = median(samples.map((s) => s.busiestLoopMs));
  const primary = median(samples.map((s) => s.leaderMs));
  const clients = median(samples.map((s) => s.clientsMs));
  const projectedMs = Math.max(loop, total / cores);
  return {
    line:
      `  ${name}: CPU ${total.toFixed(0)} ms a round (busiest event loop ${loop.toFixed(0)} ms, ` +
      `the primary process ${primary.toFixed(0)} ms; the bench's clients ${clients.toFixed(0)} ms)`,
    projectedMs,
  };
}

export async function run(): Promise<void> {
  const root = tempDir('recrypt-bench-cluster-');
  const gateways: Gateway[] = [];
  let dns: DnssecResolver | undefined;
  try {
    // SPF and DMARC for the sender's domain are looked up before each 250: from a local
    // resolver, so that the figures measure the gateway, not this machine's DNS server
    // (whose dropped UDP queries cost c-ares a 1 s retry, one round in two here).
    dns = await DnssecResolver.start([
      { name: 'bench.example', signed: false, records: ['@ IN TXT "v=spf1 ip4:127.0.0.1 -all"'] },
    ]);
    gateways.push(
      await startGateway(root.path, 1, dns.address),
      await startGateway(root.path, 2, dns.address),
    );
    const sessions = new Map<string, Awaited<ReturnType<typeof imapSession>>[]>();
    for (const gateway of gateways) {
      const opened = [];
      for (let i = 0; i < SESSIONS; i++) opened.push(await imapSession(gateway));
      sessions.set(gateway.name, opened);
    }
    // Per gateway: the bytes every session receives a round (its ciphertexts' sizes).
    const fetched = new Map(gateways.map((g) => [g.name, new Set<number>()]));
    const fetches = await compare(
      gateways.map((gateway) => ({
        name: `proxy FETCH, ${gateway.name}`,
        run: () =>
          measured(`proxy FETCH, ${gateway.name}`, gateway, async () => {
            const bytes = await Promise.all(sessions.get(gateway.name)!.map((s) => s.fetch()));
            for (const b of bytes) fetched.get(gateway.name)!.add(b);
          }),
      })),
      { rounds: ROUNDS },
    );
    for (const [name, sizes] of fetched)
      if (sizes.size !== 1)
        throw new BenchSanityError(`${name}: FETCH rounds moved ${[...sizes].join(', ')} bytes`);
    for (const list of sessions.values()) for (const s of list) s.close();
    let offset = MESSAGES;
    const deliveries = await compare(
      gateways.map((gateway) => ({
        name: `MX delivery, ${gateway.name}`,
        run: () =>
          measured(`MX delivery, ${gateway.name}`, gateway, () =>
            Promise.all(
              Array.from({ length: SESSIONS }, () => {
                offset += MX_PER_SESSION;
                return deliver(gateway.ports.smtp, MX_PER_SESSION, offset);
              }),
            ),
          ),
      })),
      { rounds: ROUNDS },
    );
    const perRound = SESSIONS * MESSAGES;
    console.log(
      `cores: ${availableParallelism()}; proxy FETCH: ${SESSIONS} sessions × ${MESSAGES} messages of ` +
        `${MESSAGE_BYTES / 1024} KiB (${perRound} fetches a round); MX: ${SESSIONS} sessions × ${MX_PER_SESSION} ` +
        `messages of ${MESSAGE_BYTES / 1024} KiB (${SESSIONS * MX_PER_SESSION} a round)`,
    );
    console.log(formatResults(fetches, 'ms'));
    console.log(formatResults(deliveries, 'ms'));
    const [one, two] = gateways.map((g) => g.name);
    console.log(
      `speed-up with 2 processes (1-process time / 2-process time; goal ≥ 1.7×):\n` +
        `  proxy FETCH  ${ratio(fetches, `proxy FETCH, ${one}`, `proxy FETCH, ${two}`)}\n` +
        `  MX delivery  ${ratio(deliveries, `MX delivery, ${one}`, `MX delivery, ${two}`)}`,
    );
    const cores = availableParallelism();
    console.log(
      `CPU (median per round; the load on the machine barely changes it), and the speed-up it ` +
        `predicts on an idle machine of ${cores} cores, max(busiest loop, CPU / cores):`,
    );
    for (const measure of ['proxy FETCH', 'MX delivery']) {
      const [p1, p2] = [one, two].map((g) => cpuReport(`${measure}, ${g}`, cores));
      console.log(`${p1!.line}\n${p2!.line}`);
      console.log(`  → ${measure}: ${(p1!.projectedMs / p2!.projectedMs).toFixed(2)}× predicted`);
    }
  } finally {
    for (const gateway of gateways) {
      await gateway.proc.stop(20_000);
      await gateway.redis.dispose();
    }
    await dns?.stop();
    root.remove();
  }
}
