/**
 * `npm run bench -- abuse`: does one hostile message or connection stall the gateway?
 * One event loop serves SMTP, IMAP and HTTPS, so a real `recrypt start` is run and its
 * /healthz is fetched over HTTPS on loopback every few milliseconds: first idle, then
 * while each hostile shape is sent at the largest size the gateway allows (header caps,
 * smtp.maxMessageBytes, smtp.maxRecipients). The table puts the worst /healthz latency
 * during each shape next to the idle worst, measured in the same run; goal: < 100 ms
 * (docs/threat-model.md "Limits"). Next to it the gateway's own longest event-loop delay
 * and its garbage-collection pause time during the shape (from its /metrics), to tell a
 * stall of the gateway, and how much of it was the collector, from a probe that waited
 * for a CPU on a loaded machine. A second table measures what running mailauth in a
 * worker thread (src/smtp/auth-pool.ts) costs on a normal 1 MB DKIM-signed message, and
 * a third what the DATA parser costs the event loop per message (src/smtp/data-stream.ts
 * against the smtp-server parser it replaces).
 *
 * The IMAP shapes (a huge pre-login SASL PLAIN continuation, a 31.8 KB RFC 2971 ID) only
 * measure: their limits belong to the IMAP proxy.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { authenticate } from 'mailauth';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { AuthPool } from '../src/smtp/auth-pool.js';
import { type DataParser, feedDataStream } from '../src/smtp/data-stream.js';
import { compare, formatResults } from './harness.js';
import { runCli } from '../test/helpers/cli-run.js';
import { cliCommand } from '../test/helpers/cli-command.js';
import {
  cleanEnv,
  spawnGroup,
  startRecrypt,
  waitFor,
  type Spawned,
} from '../test/helpers/gateway-process.js';
import { freePort } from '../test/helpers/ports.js';
import { SmtpWire } from '../test/helpers/smtp-wire.js';
import { tempDir } from '../test/helpers/tmp.js';

const ADDRESS = 'alice@example.org';
// smtp.maxMessageBytes's default; ABUSE_MESSAGE_BYTES sends the large shapes smaller, to
// tell the cost of a large message from the cost of its hostile part.
const MAX_MESSAGE = Number(process.env['ABUSE_MESSAGE_BYTES'] ?? 50 * 1024 * 1024);
const MAX_HEADER = 100 * 1024; // smtp.maxHeaderBytes
const MAX_LINES = 1000; // smtp.maxHeaderLines
const MAX_FIELD = 32 * 1024; // smtp.maxHeaderFieldBytes
const PROBE_EVERY_MS = 5;

interface Probe {
  stop(): Promise<number[]>;
}

/** GETs /healthz one after the other (one keep-alive connection) until stopped. */
function probe(port: number, ca: string): Probe {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const latencies: number[] = [];
  let running = true;
  const once = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = request(
        { host: '127.0.0.1', port, path: '/healthz', agent, servername: 'localhost' },
        (res) => {
          res.resume();
          res.on('end', () => resolve(Number(process.hrtime.bigint() - started) / 1e6));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const loop = (async () => {
    while (running) {
      // A refused or reset request counts as a stall as long as the run (it is not an answer).
      const started = Date.now();
      latencies.push(await once().catch(() => Math.max(Date.now() - started, 60_000)));
      await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      agent.destroy();
      return latencies;
    },
  };
}

const worst = (values: number[]): number => Math.max(...values);

interface LoopFigures {
  /** Longest event-loop delay (ms) since the previous scrape. */
  delayMax: number;
  /** Garbage-collection pause time (ms) since the gateway started, every kind together. */
  gcTotal: number;
}

/**
 * The gateway's own event-loop figures from /metrics (prom-client's default metrics):
 * nodejs_eventloop_lag_max_seconds (perf_hooks.monitorEventLoopDelay, reset at every
 * scrape) tells a stall of the gateway from a probe that waited for a CPU on a loaded
 * machine; nodejs_gc_duration_seconds_sum, compared before and after a shape, tells how
 * much of it the garbage collector paused the loop.
 */
async function loopFigures(port: number, ca: string): Promise<LoopFigures> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/metrics', ca, servername: 'localhost' },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.end();
  });
  const match = /^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
  let gcTotal = 0;
  for (const gc of text.matchAll(/^nodejs_gc_duration_seconds_sum(?:\{[^}]*\})? ([0-9.e+-]+)$/gm))
    gcTotal += Number(gc[1]) * 1000;
  return { delayMax: match === null ? NaN : Number(match[1]) * 1000, gcTotal };
}

/** The goal is < 100 ms; on a loaded machine the idle worst is the floor that can be told apart. */
function verdict(worstMs: number, idleWorstMs: number): string {
  if (worstMs < 100) return 'ok (< 100 ms)';
  return worstMs <= idleWorstMs ? 'over 100 ms, within idle worst' : 'STALLS';
}
const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** Sends one SMTP transaction; returns the final reply (or the first refusal). */
async function smtpSend(port: number, rcpts: string[], message: Buffer): Promise<string> {
  const wire = await SmtpWire.open(port);
  try {
    await wire.reply(60_000);
    await wire.command('EHLO bench.example');
    await wire.command(`MAIL FROM:<someone@sender.example> SIZE=${message.length}`);
    for (const rcpt of rcpts) await wire.command(`RCPT TO:<${rcpt}>`);
    const data = await wire.command('DATA');
    if (!data.startsWith('354')) return data;
    for (let at = 0; at < message.length; at += 1 << 20)
      wire.write(message.subarray(at, Math.min(at + (1 << 20), message.length)));
    wire.write('.\r\n');
    return await wire.reply(600_000);
  } finally {
    wire.close();
  }
}

/** A body of `size` bytes in 78-byte text lines (no line starts with a dot). */
function textBody(size: number): Buffer {
  const line = Buffer.from(`${'abcdefghij'.repeat(7)}123456\r\n`);
  const body = Buffer.alloc(size);
  for (let at = 0; at < size; at += line.length) line.copy(body, at);
  if (size >= 2) body.write('\r\n', size - 2);
  return body;
}

const base = (tag: string): string =>
  `From: someone@sender.example\r\nTo: ${ADDRESS}\r\nSubject: abuse ${tag}\r\nMessage-ID: <${tag}.${Date.now()}@sender.example>\r\n`;

function withBody(header: string, total: number): Buffer {
  const head = Buffer.from(`${header}\r\n`, 'latin1');
  return Buffer.concat([head, textBody(Math.max(2, total - head.length))]);
}

/** As many `field(n)` lines as the header caps allow after the base fields. */
function fill(tag: string, field: (n: number) => string, linesPer = 1): string {
  let header = base(tag);
  let lines = 4;
  for (let n = 0; ; n++) {
    const next = field(n);
    if (header.length + next.length > MAX_HEADER || lines + linesPer > MAX_LINES) return header;
    header += next;
    lines += linesPer;
  }
}

const shapes: { name: string; build(): { rcpts: string[]; message: Buffer } }[] = [
  {
    name: 'plain text, max size',
    build: () => ({ rcpts: [ADDRESS], message: withBody(base('plain'), MAX_MESSAGE - 64) }),
  },
  {
    name: 'folded header, max lines/bytes',
    build: () => {
      // Fields of MAX_FIELD bytes folded over 100-byte lines, up to the line and byte caps.
      const perField = Math.floor(MAX_FIELD / 100);
      const folded = (n: number): string =>
        `X-Folded-${n}: x\r\n${` ${'f'.repeat(97)}\r\n`.repeat(perField - 1)}`;
      return {
        rcpts: [ADDRESS],
        message: withBody(fill('folded', folded, perField), 1024),
      };
    },
  },
  {
    name: 'DKIM-Signature × cap, max size',
    build: () => {
      // Each with its own l=, so that mailauth 4 would hash the body once per signature.
      const sig = (n: number): string =>
        `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d${n}.example; s=s; l=${1000 + n}; h=from; bh=AA; b=BB\r\n`;
      return { rcpts: [ADDRESS], message: withBody(fill('dkim', sig), MAX_MESSAGE - 64) };
    },
  },
  {
    name: 'ARC sets × cap, max size',
    build: () => {
      const set = (n: number): string =>
        `ARC-Seal: i=${n + 1}; a=rsa-sha256; cv=pass; d=a${n}.example; s=s; b=BB\r\n` +
        `ARC-Message-Signature: i=${n + 1}; a=rsa-sha256; c=relaxed/relaxed; d=a${n}.example; s=s; h=from; bh=AA; b=BB\r\n` +
        `ARC-Authentication-Results: i=${n + 1}; a${n}.example; spf=pass\r\n`;
      return { rcpts: [ADDRESS], message: withBody(fill('arc', set, 3), MAX_MESSAGE - 64) };
    },
  },
  {
    name: 'one body line of max size, DKIM',
    build: () => {
      const header =
        base('long') +
        'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.example; s=s; h=from; bh=AA; b=BB\r\n\r\n';
      const body = Buffer.alloc(MAX_MESSAGE - header.length - 64, 'a ');
      body.write('\r\n', body.length - 2);
      return { rcpts: [ADDRESS], message: Buffer.concat([Buffer.from(header), body]) };
    },
  },
  {
    name: '100 RCPT (99 unknown), max size',
    build: () => ({
      rcpts: [ADDRESS, ...Array.from({ length: 99 }, (_, i) => `nobody${i}@example.org`)],
      message: withBody(base('rcpts'), MAX_MESSAGE - 64),
    }),
  },
];

/** IMAP on implicit TLS: sends `lines` (waiting for a continuation where asked); returns the first reply line. */
async function imapShape(port: number, steps: (Buffer | 'wait+')[]): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const until = async (test: () => boolean, ms = 30_000): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!test() && Date.now() < deadline && !socket.destroyed)
      await new Promise((resolve) => setTimeout(resolve, 10));
    return test();
  };
  await until(() => text.includes('\r\n'));
  const greeting = text.length;
  for (const step of steps) {
    if (step === 'wait+') await until(() => /\r\n\+ ?/.test(text) || /^\+ /m.test(text));
    else if (!socket.destroyed)
      await new Promise<void>((resolve) => socket.write(step, () => resolve()));
  }
  await until(
    () => /\r\n/.test(text.slice(greeting + 1)) && /\b(OK|NO|BAD|BYE)\b/.test(text.slice(greeting)),
    30_000,
  );
  socket.destroy();
  const reply = text
    .slice(greeting)
    .split('\r\n')
    .find((line) => /\b(OK|NO|BAD|BYE)\b/.test(line));
  return (reply ?? (text.slice(greeting) || '(closed)')).slice(0, 60);
}

function idCommand(): Buffer {
  // RFC 2971: up to 30 field/value pairs, fields ≤ 30 octets, values ≤ 1024 octets.
  const pairs = Array.from(
    { length: 30 },
    (_, i) => `"f${String(i).padStart(28, '0')}" "${'v'.repeat(1024)}"`,
  ).join(' ');
  return Buffer.from(`a1 ID (${pairs})\r\n`);
}

async function workerOverhead(): Promise<void> {
  const key = execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const { dkimSign } = await import('mailauth');
  const unsigned = withBody(base('overhead'), 1024 * 1024);
  const signed = await dkimSign(unsigned, {
    signatureData: [{ signingDomain: 'sender.example', selector: 's', privateKey: key }],
  } as unknown as Parameters<typeof dkimSign>[1]);
  const message = Buffer.concat([Buffer.from(signed.signatures), unsigned]);
  const shared = Buffer.from(new SharedArrayBuffer(message.length));
  message.copy(shared);
  const resolver = async (name: string): Promise<never> => {
    throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
  const options = {
    ip: '127.0.0.1',
    helo: 'bench.example',
    sender: 'someone@sender.example',
    mta: 'mx',
  };
  const pool = new AuthPool({ size: 1, resolver });
  await pool.check({ ...options, message: shared, maxDkimSignatures: 5 }, 120_000); // start it
  const rounds = 20;
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) await fn();
    return Number(process.hrtime.bigint() - started) / 1e6 / rounds;
  };
  const inline = await time(() =>
    authenticate(Readable.from([message]), {
      ...options,
      disableArc: true,
      disableBimi: true,
      resolver,
    } as never),
  );
  const pooled = await time(() =>
    pool.check({ ...options, message: shared, maxDkimSignatures: 5 }, 120_000),
  );
  await pool.close();
  console.log('\n| mailauth on a 1 MB DKIM-signed message | ms per message (mean of 20) |');
  console.log('|---|---|');
  console.log(`| on the event loop (before) | ${inline.toFixed(1)} |`);
  console.log(`| in the worker pool (now; event loop free meanwhile) | ${pooled.toFixed(1)} |`);
  console.log(
    `| worker overhead | ${(pooled - inline).toFixed(1)} (${((pooled / inline - 1) * 100).toFixed(0)}%) |`,
  );
}

interface Parser extends DataParser, NodeJS.WritableStream {
  oncommand(command: Buffer, callback: () => void): void;
  startDataMode(): NodeJS.ReadableStream;
  continue(): void;
}

/**
 * The DATA parser the MX and the store's LMTP run on the event loop for every byte of a
 * message: smtp-server's (every byte looked at in JavaScript, every chunk copied) against
 * src/smtp/data-stream.ts, on the largest message in 64 KiB socket-sized chunks, interleaved.
 * CPU ms for the whole message, and the longest single chunk's synchronous step.
 */
async function parserCost(): Promise<void> {
  const message = withBody(base('parser'), MAX_MESSAGE - 64);
  const chunks: Buffer[] = [];
  const wire = Buffer.concat([Buffer.from('DATA\r\n'), message, Buffer.from('.\r\n')]);
  for (let at = 0; at < wire.length; at += 65536) chunks.push(wire.subarray(at, at + 65536));
  const longest = new Map<string, number>();
  const parse = async (name: string, fast: boolean): Promise<number> => {
    const parser = new (SMTPStream as new () => Parser)();
    if (fast) parser._feedDataStream = feedDataStream;
    let received = 0;
    const ended = new Promise<void>((resolve) => {
      parser.oncommand = (_command, callback) => {
        const stream = parser.startDataMode();
        stream.on('data', (chunk: Buffer) => (received += chunk.length));
        stream.on('end', () => {
          resolve();
          parser.continue();
        });
        callback();
      };
    });
    const cpu = process.cpuUsage();
    let worstStep = 0;
    for (const chunk of chunks) {
      const started = process.hrtime.bigint();
      await new Promise<void>((resolve) => parser.write(chunk, () => resolve()));
      worstStep = Math.max(worstStep, Number(process.hrtime.bigint() - started) / 1e6);
    }
    await ended;
    if (received !== message.length)
      throw new Error(`${name}: ${received} of ${message.length} bytes`);
    const used = process.cpuUsage(cpu);
    longest.set(name, Math.max(longest.get(name) ?? 0, worstStep));
    return (used.user + used.system) / 1000;
  };
  const results = await compare(
    [
      {
        name: 'smtp-server DATA parser (before)',
        run: () => parse('smtp-server DATA parser (before)', false),
      },
      { name: 'data-stream.ts (now)', run: () => parse('data-stream.ts (now)', true) },
    ],
    { rounds: 5 },
  );
  console.log(`\nDATA parsing of one ${MAX_MESSAGE} byte message, CPU ms (5 rounds interleaved):`);
  console.log(formatResults(results, 'ms', 1));
  for (const [name, ms] of longest)
    console.log(`  ${name}: longest step for one 64 KiB chunk ${ms.toFixed(2)} ms (wall)`);
}

export async function run(): Promise<void> {
  const tmp = tempDir('recrypt-abuse-');
  const configFile = join(tmp.path, 'recrypt.yaml');
  const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
  const ports = {
    smtp: await freePort(),
    imap: await freePort(),
    starttls: await freePort(),
    admin: await freePort(),
    operator: await freePort(),
    store: await freePort(),
  };
  writeFileSync(
    configFile,
    [
      'dataDir: ./data',
      'logLevel: warn',
      `smtp: { host: 127.0.0.1, port: ${ports.smtp}, localDomains: [example.org] }`,
      `imap: { host: 127.0.0.1, port: ${ports.imap}, starttlsPort: ${ports.starttls} }`,
      `admin: { port: ${ports.admin} }`,
      `operator: { port: ${ports.operator} }`,
      `mailStore: { kind: embedded, imapPort: ${ports.store} }`,
    ].join('\n'),
  );
  let gateway: Spawned | undefined;
  try {
    // ABUSE_CPU_PROF=<dir>: the gateway writes a V8 CPU profile there when it stops, to
    // see where its event loop went.
    const profile = process.env['ABUSE_CPU_PROF'];
    const [node, ...cli] = cliCommand();
    gateway =
      profile === undefined
        ? startRecrypt(['--config', configFile], tmp.path)
        : spawnGroup(
            node!,
            ['--cpu-prof', `--cpu-prof-dir=${profile}`, ...cli, 'start', '--config', configFile],
            { cwd: tmp.path, env: cleanEnv() },
          );
    const started = gateway;
    await waitFor('the gateway', async () => {
      if (started.child.exitCode !== null) throw new Error(`gateway exited: ${started.output()}`);
      try {
        return (
          execFileSync(
            'curl',
            [
              '-s',
              '-o',
              '/dev/null',
              '-w',
              '%{http_code}',
              '--cacert',
              certFile,
              `https://127.0.0.1:${ports.operator}/readyz`,
            ],
            { encoding: 'utf8' },
          ) === '200'
        );
      } catch {
        return false;
      }
    });
    const added = await runCli(['user', 'add', ADDRESS, '--config', configFile], { cwd: tmp.path });
    const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)?.[1];
    if (token === undefined) throw new Error(`user add: ${added.stderr}`);
    const owner = join(tmp.path, 'owner');
    mkdirSync(owner);
    copyFileSync(certFile, join(owner, 'gateway-cert.pem'));
    const init = await runCli(
      [
        'owner',
        'init',
        ADDRESS,
        '--token',
        token,
        '--gateway',
        `https://127.0.0.1:${ports.admin}`,
        '--ca',
        'gateway-cert.pem',
      ],
      {
        cwd: owner,
        env: { RECRYPT_PASSPHRASE: 'correct horse battery staple' },
        timeoutMs: 120_000,
      },
    );
    if (init.code !== 0) throw new Error(`owner init: ${init.stderr}`);
    const ca = readFileSync(certFile, 'utf8');

    // One message first, so that the shapes do not pay for the worker's start.
    await smtpSend(ports.smtp, [ADDRESS], withBody(base('warm'), 4096));
    await loopFigures(ports.operator, ca);
    const idleProbe = probe(ports.admin, ca);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idle = await idleProbe.stop();
    const idleLoop = (await loopFigures(ports.operator, ca)).delayMax;
    const idleWorst = worst(idle);
    // The machine's load matters: /healthz waits for a CPU as much as for the event loop.
    console.log(
      `load average (1 min): ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`,
    );
    console.log(
      `idle /healthz: ${idle.length} requests, median ${median(idle).toFixed(1)} ms, worst ${idleWorst.toFixed(1)} ms; ` +
        `gateway event-loop delay max ${idleLoop.toFixed(1)} ms`,
    );
    console.log(
      '\n| shape | bytes | reply | worst /healthz ms | median ms | idle worst ms | gateway loop delay max ms | gateway GC pauses ms | verdict |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    const row = (
      name: string,
      bytes: number,
      reply: string,
      latencies: number[],
      before: LoopFigures,
      after: LoopFigures,
    ): void => {
      const w = worst(latencies);
      console.log(
        `| ${name} | ${bytes} | ${reply.replace(/\|/g, '/').slice(0, 48)} | ${w.toFixed(1)} | ${median(latencies).toFixed(1)} | ${idleWorst.toFixed(1)} | ${after.delayMax.toFixed(1)} | ${(after.gcTotal - before.gcTotal).toFixed(1)} | ${verdict(w, idleWorst)} |`,
      );
    };
    const alive = (): void => {
      if (started.child.exitCode !== null) throw new Error('the gateway died');
    };
    // ABUSE_SHAPES=dkim,arc runs only the shapes whose names contain one of the words.
    const only = process.env['ABUSE_SHAPES']?.split(',');
    for (const shape of shapes.filter((s) => !only || only.some((w) => s.name.includes(w)))) {
      const { rcpts, message } = shape.build();
      const before = await loopFigures(ports.operator, ca);
      const p = probe(ports.admin, ca);
      const reply = await smtpSend(ports.smtp, rcpts, message).catch((e: Error) => e.message);
      const latencies = await p.stop();
      row(
        shape.name,
        message.length,
        reply,
        latencies,
        before,
        await loopFigures(ports.operator, ca),
      );
      alive();
    }
    // IMAP (the proxy's limits; measured only).
    const sasl = Buffer.alloc(64 * 1024 * 1024, 'A');
    sasl.write('\r\n', sasl.length - 2);
    const imapShapes: [string, (Buffer | 'wait+')[]][] = [
      [
        'IMAP pre-login SASL PLAIN continuation, 64 MiB',
        [Buffer.from('a1 AUTHENTICATE PLAIN\r\n'), 'wait+', sasl],
      ],
      ['IMAP ID command (RFC 2971 maximum)', [idCommand()]],
    ];
    for (const [name, steps] of imapShapes.filter(
      ([n]) => !only || only.some((w) => n.includes(w)),
    )) {
      const before = await loopFigures(ports.operator, ca);
      const p = probe(ports.admin, ca);
      const reply = await imapShape(ports.imap, steps).catch((e: Error) => e.message);
      const bytes = steps.reduce((sum, step) => sum + (step === 'wait+' ? 0 : step.length), 0);
      const latencies = await p.stop();
      row(name, bytes, reply, latencies, before, await loopFigures(ports.operator, ca));
      alive();
    }
  } finally {
    await gateway?.stop(10_000);
    tmp.remove();
  }
  await workerOverhead();
  await parserCost();
}
