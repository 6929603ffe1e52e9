/**
 * The embedded store's IMAP server against a real Dovecot on the same 10,000 messages
 * (9,000 of 1.5 KB, 1,000 of 20 KB): FETCH FLAGS+ENVELOPE for all, FETCH BODY.PEEK[] of
 * the whole mailbox, of a UID range and of the 1,000 large ones, SEARCH by header, SORT,
 * THREAD, and memory per idle IMAP connection. Both servers run as separate processes;
 * one client in this process drives both the same way. Each command runs once untimed on
 * each server (both build their indexes and caches), then the two servers take turns
 * over ROUNDS rounds (bench/harness.ts); best and median per server, and the ratio.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { startDovecot } from '../test/helpers/dovecot.js';
import { compare, formatResults, median, ratio, timeMs } from './harness.js';
import { tempDir } from '../test/helpers/tmp.js';

const SMALL = 9_000;
const LARGE = 1_000;
const LARGE_SIZE = 20 * 1024;
const IDLE_CONNECTIONS = 200;
// STORE_BENCH_ROUNDS=<n> for more rounds (CPU means steadier than the 10 ms ticks of one run)
const ROUNDS = Number(process.env.STORE_BENCH_ROUNDS ?? 5);
const USER = 'bench';

function message(i: number): Buffer {
  const headers = [
    `From: Sender ${i % 97} <sender${i % 97}@example.org>`,
    `To: Bench User <${USER}@example.com>`,
    `Cc: "List, Team" <team${i % 13}@example.net>`,
    `Subject: Benchmark message number ${i} about topic ${i % 50}`,
    `Date: Mon, 02 Mar 2026 ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00 +0000`,
    `Message-ID: <bench-${i}@example.org>`,
    `X-Bench-Tag: tag-${i % 100}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
  ].join('\r\n');
  const target = i >= SMALL ? LARGE_SIZE : 1_500;
  const line = `Line of benchmark text for message ${i}, padding padding padding.\r\n`;
  let body = '';
  while (headers.length + 4 + body.length + line.length <= target) body += line;
  body += 'x'.repeat(Math.max(0, target - headers.length - 4 - body.length - 2)) + '\r\n';
  return Buffer.from(`${headers}\r\n\r\n${body}`);
}

/** Drops the messages into a Maildir's new/ (both servers index them on first use). */
function writeMaildir(maildir: string, messages: Buffer[]): void {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
  messages.forEach((m, i) =>
    writeFileSync(join(maildir, 'new', `${1_700_000_000 + i}.M${i}P1.bench,S=${m.length}`), m),
  );
}

/** A lean raw client: sends one command, counts bytes until its tagged reply (never buffers a whole response). */
class Client {
  private tail = '';
  private waiting: {
    tag: string;
    resolve: (bytes: number) => void;
    reject: (err: Error) => void;
    bytes: number;
  } | null = null;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  static async open(
    port: number,
    user: string,
    masterUser: string,
    password: string,
  ): Promise<Client> {
    const socket = connect(port, '127.0.0.1');
    const c = new Client(socket);
    await new Promise<void>((resolve) => {
      c.waiting = { tag: '*', resolve: () => resolve(), reject: () => undefined, bytes: 0 };
    });
    await c.run(
      `AUTHENTICATE PLAIN ${Buffer.from(`${user}\u0000${masterUser}\u0000${password}`).toString('base64')}`,
    );
    return c;
  }

  private onData(chunk: Buffer): void {
    const w = this.waiting;
    if (w === null) return;
    w.bytes += chunk.length;
    const text = this.tail + chunk.toString('latin1', Math.max(0, chunk.length - 4096));
    const marker =
      w.tag === '*' ? /^\* OK/m : new RegExp(`(^|\\r\\n)${w.tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`);
    if (marker.test(text)) {
      this.waiting = null;
      this.tail = '';
      if (w.tag !== '*' && !new RegExp(`${w.tag} OK`).test(text))
        w.reject(new Error(`command ${w.tag} failed: ${text.slice(-200)}`));
      else w.resolve(w.bytes);
      return;
    }
    this.tail = text.slice(-200);
  }

  private n = 0;
  run(command: string): Promise<number> {
    const tag = `b${++this.n}`;
    return new Promise((resolve, reject) => {
      this.waiting = { tag, resolve, reject, bytes: 0 };
      this.socket.write(`${tag} ${command}\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function rssOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0) * 1024;
    } catch {
      // process ended between listing and reading
    }
  }
  return total;
}

/** CPU time (ms, user + system, all threads) the processes have used so far; 10 ms resolution. */
function cpuOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    } catch {
      // process ended between listing and reading
    }
  }
  return ticks * 10;
}

/**
 * The processes of this bench's Dovecot: its master (whose command line names the
 * bench's config under `baseDir`) and every process below it. Not every `dovecot` or
 * `imap` on the machine: other test runs' Dovecots would count in the CPU figures.
 */
function dovecotPids(baseDir: string): number[] {
  const parent = new Map<number, number>();
  let master = -1;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(baseDir)) master = pid;
    } catch {
      // process ended between listing and reading
    }
  }
  const below = (pid: number): boolean => {
    for (let p = pid, depth = 0; p > 1 && depth < 16; p = parent.get(p) ?? 0, depth++)
      if (p === master) return true;
    return false;
  };
  return [...parent.keys()].filter(below);
}

async function idleMemory(
  port: number,
  pids: () => number[],
  masterUser: string,
  password: string,
  settle: () => Promise<void>,
): Promise<number> {
  await settle();
  const before = rssOf(pids());
  const clients: Client[] = [];
  for (let i = 0; i < IDLE_CONNECTIONS; i++) {
    const c = await Client.open(port, USER, masterUser, password);
    await c.run('SELECT INBOX');
    clients.push(c);
  }
  await settle();
  const after = rssOf(pids());
  for (const c of clients) c.close();
  return (after - before) / IDLE_CONNECTIONS;
}

/** Our server in its own process, like Dovecot's. */
async function startOurs(
  root: string,
  password: string,
): Promise<{ child: ChildProcess; port: number }> {
  const code = `
    const { createMaildirStore } = await import(${JSON.stringify(new URL('../src/store/maildir/index.ts', import.meta.url).href)});
    const { startImapServer } = await import(${JSON.stringify(new URL('../src/store/imap/index.ts', import.meta.url).href)});
    const store = await createMaildirStore({ root: ${JSON.stringify(root)} });
    const server = await startImapServer({ store, master: { user: 'gateway', password: ${JSON.stringify(password)} }, limits: { maxConnections: 10000, commandsPerSecond: 100000 } });
    process.on('SIGUSR2', () => globalThis.gc?.());
    process.stdout.write('PORT ' + server.port + '\\n');
    process.stdin.on('end', async () => { await server.close(); await store.close(); process.exit(0); });
    process.stdin.resume();`;
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`our server exited ${c}`)));
  });
  return { child, port };
}

export async function run(): Promise<void> {
  const messages = Array.from({ length: SMALL + LARGE }, (_, i) => message(i));
  const dovecot = await startDovecot({
    extraConfig: `protocol imap {\n  mail_max_userip_connections = ${IDLE_CONNECTIONS * 2}\n}`,
  });
  const ours = tempDir('store-bench-');
  let child: ChildProcess | null = null;
  try {
    const dovecotMaildir = join(dovecot.mailDir, USER, 'Maildir');
    writeMaildir(dovecotMaildir, messages);
    execFileSync('chown', ['-R', 'vmail:vmail', join(dovecot.mailDir, USER)]);
    writeMaildir(join(ours.path, USER, 'Maildir'), messages);
    const started = await startOurs(ours.path, dovecot.masterPassword);
    child = started.child;

    const ops: Array<[string, string]> = [
      ['FETCH 1:* (FLAGS ENVELOPE), 10,000 msgs', 'FETCH 1:* (FLAGS ENVELOPE)'],
      ['FETCH 1:* BODY.PEEK[], 10,000 msgs', 'FETCH 1:* BODY.PEEK[]'],
      ['UID FETCH 2001:7000 BODY.PEEK[], 5,000 msgs', 'UID FETCH 2001:7000 BODY.PEEK[]'],
      ['FETCH BODY.PEEK[] 1,000 x 20 KB', `FETCH ${SMALL + 1}:${SMALL + LARGE} BODY.PEEK[]`],
      ['SEARCH HEADER X-Bench-Tag tag-42', 'SEARCH HEADER X-Bench-Tag tag-42'],
      ['SEARCH RETURN (COUNT) FROM sender7', 'SEARCH RETURN (COUNT) FROM sender7'],
      ['SORT (SUBJECT DATE), 10,000 msgs', 'SORT (SUBJECT DATE) UTF-8 ALL'],
      ['THREAD REFERENCES, 10,000 msgs', 'THREAD REFERENCES UTF-8 ALL'],
      ['THREAD ORDEREDSUBJECT, 10,000 msgs', 'THREAD ORDEREDSUBJECT UTF-8 ALL'],
    ];
    const pids: Record<string, () => number[]> = {
      ours: () => [started.child.pid as number],
      dovecot: () => dovecotPids(dovecot.baseDir),
    };
    const clients = {
      ours: await Client.open(started.port, USER, dovecot.masterUser, dovecot.masterPassword),
      dovecot: await Client.open(
        dovecot.imapPort,
        USER,
        dovecot.masterUser,
        dovecot.masterPassword,
      ),
    };
    for (const c of Object.values(clients)) await c.run('SELECT INBOX');
    console.log(
      `each command: one untimed run per server, then ${ROUNDS} rounds taking turns; ms of wall time`,
    );
    // STORE_BENCH_ONLY=<regex> runs only the commands whose label matches (memory is always measured)
    const only = new RegExp(process.env.STORE_BENCH_ONLY ?? '', 'i');
    for (const [label, command] of ops.filter(([l]) => only.test(l))) {
      const bytes: Record<string, number> = {};
      const first: Record<string, number> = {};
      for (const [name, c] of Object.entries(clients)) {
        // the first run builds indexes and caches on both servers: reported, not compared
        first[name] = await timeMs(async () => (bytes[name] = await c.run(command)));
      }
      // the servers' CPU time too: on a loaded machine it varies less than wall time
      const cpu: Record<string, number[]> = { ours: [], dovecot: [] };
      const results = await compare(
        Object.entries(clients).map(([name, c]) => ({
          name,
          run: async () => {
            const list = pids[name]?.() ?? [];
            const before = cpuOf(list);
            const ms = await timeMs(() => c.run(command));
            cpu[name]?.push(cpuOf(list) - before);
            return ms;
          },
        })),
        { rounds: ROUNDS, warmup: 0 },
      );
      console.log(
        `${label}: ours/dovecot ${ratio(results, 'ours', 'dovecot')} ` +
          `(first run ${first.ours?.toFixed(0)} / ${first.dovecot?.toFixed(0)} ms; ` +
          `reply bytes ${bytes.ours} / ${bytes.dovecot})`,
      );
      console.log(formatResults(results, 'ms', 1));
      console.log(
        `  server CPU ms, median: ours ${median(cpu.ours ?? [])}, dovecot ${median(cpu.dovecot ?? [])}; ` +
          `mean: ours ${mean(cpu.ours ?? []).toFixed(1)}, dovecot ${mean(cpu.dovecot ?? []).toFixed(1)}`,
      );
    }
    for (const c of Object.values(clients)) c.close();
    // a fresh process of ours for the memory figure, so the FETCH workload's heap does not blur it
    child.stdin?.end();
    await new Promise((r) => child?.once('exit', r));
    const fresh = await startOurs(ours.path, dovecot.masterPassword);
    child = fresh.child;
    const settleOurs = async (): Promise<void> => {
      fresh.child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 500));
    };
    const memOurs = await idleMemory(
      fresh.port,
      () => [fresh.child.pid as number],
      dovecot.masterUser,
      dovecot.masterPassword,
      settleOurs,
    );
    const memDovecot = await idleMemory(
      dovecot.imapPort,
      () => dovecotPids(dovecot.baseDir),
      dovecot.masterUser,
      dovecot.masterPassword,
      () => new Promise((r) => setTimeout(r, 500)),
    );
    console.log(
      `memory per idle IMAP connection (RSS growth / ${IDLE_CONNECTIONS}, INBOX selected): ours ${(memOurs / 1024).toFixed(0)} KiB, dovecot ${(memDovecot / 1024).toFixed(0)} KiB, ratio ${(memOurs / memDovecot).toFixed(2)}`,
    );
  } finally {
    if (child !== null) {
      child.stdin?.end();
      await new Promise((r) => {
        const t = setTimeout(() => {
          child?.kill('SIGKILL');
          r(undefined);
        }, 5000);
        child?.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
    await dovecot.remove();
    ours.remove();
  }
}
