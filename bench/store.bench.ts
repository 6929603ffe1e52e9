/**
 * The embedded store's IMAP server against a real Dovecot on the same 10,000 messages:
 * FETCH FLAGS+ENVELOPE for all, FETCH BODY[] of 1,000 × 20 KB, SEARCH by
 * header, and memory per idle IMAP connection. Both servers run as separate processes;
 * one client in this process drives both the same way. Each timing is the best of 3
 * after one untimed warm-up (which lets both build their indexes/caches).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { startDovecot } from '../test/helpers/dovecot.js';
import { tempDir } from '../test/helpers/tmp.js';

const SMALL = 9_000;
const LARGE = 1_000;
const LARGE_SIZE = 20 * 1024;
const IDLE_CONNECTIONS = 200;
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

async function timeIt(
  client: Client,
  command: string,
): Promise<{ ms: number; bytes: number; firstMs: number }> {
  const t = performance.now();
  await client.run(command); // warm-up: first use builds indexes and caches on both servers
  const firstMs = performance.now() - t;
  let best = Number.POSITIVE_INFINITY;
  let bytes = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    bytes = await client.run(command);
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, bytes, firstMs };
}

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

function dovecotPids(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => {
      try {
        return (
          readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('dovecot') ||
          /^(imap|imap-login)\b/.test(readFileSync(`/proc/${pid}/comm`, 'latin1'))
        );
      } catch {
        return false;
      }
    });
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

    const servers = [
      { name: 'ours', port: started.port, pids: () => [started.child.pid as number] },
      { name: 'dovecot', port: dovecot.imapPort, pids: dovecotPids },
    ];
    const results: Record<
      string,
      Record<string, { ms: number; bytes: number; firstMs: number }>
    > = {};
    for (const s of servers) {
      const c = await Client.open(s.port, USER, dovecot.masterUser, dovecot.masterPassword);
      await c.run('SELECT INBOX');
      results[s.name] = {
        'FETCH 1:* (FLAGS ENVELOPE), 10,000 msgs': await timeIt(c, 'FETCH 1:* (FLAGS ENVELOPE)'),
        'FETCH BODY.PEEK[] 1,000 x 20 KB': await timeIt(
          c,
          `FETCH ${SMALL + 1}:${SMALL + LARGE} BODY.PEEK[]`,
        ),
        'SEARCH HEADER X-Bench-Tag tag-42': await timeIt(c, 'SEARCH HEADER X-Bench-Tag tag-42'),
        'SEARCH RETURN (COUNT) FROM sender7': await timeIt(c, 'SEARCH RETURN (COUNT) FROM sender7'),
        'SORT (SUBJECT DATE), 10,000 msgs': await timeIt(c, 'SORT (SUBJECT DATE) UTF-8 ALL'),
        'THREAD REFERENCES, 10,000 msgs': await timeIt(c, 'THREAD REFERENCES UTF-8 ALL'),
      };
      c.close();
    }
    console.log(
      'operation (best of 3, warm)                ours ms   dovecot ms   ratio (ours/dovecot)   first run: ours / dovecot ms',
    );
    for (const op of Object.keys(results.ours ?? {})) {
      const a = results.ours?.[op] as { ms: number; bytes: number; firstMs: number };
      const b = results.dovecot?.[op] as { ms: number; bytes: number; firstMs: number };
      console.log(
        `${op.padEnd(42)} ${a.ms.toFixed(1).padStart(8)} ${b.ms.toFixed(1).padStart(12)}   ${(a.ms / b.ms).toFixed(2).padStart(6)}                 ${a.firstMs.toFixed(0)} / ${b.firstMs.toFixed(0)}   (reply bytes ${a.bytes} vs ${b.bytes})`,
      );
    }
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
      dovecotPids,
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
