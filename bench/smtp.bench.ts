/**
 * `npm run bench -- smtp`: messages per second through the MX into the embedded store's
 * LMTP listener, with encryption on arrival (recryption core, AES-256-CBC + ECDH P-256)
 * against the same smtp-server → LMTP path without encryption (the MX's pass-through
 * branch: same receive, trace/auth checks, buffering and LMTP delivery, no envelope),
 * side by side in one run, for 10 KB and 1 MB messages. Goal: under 25% cost.
 *
 * Then config `workers`: 1 MB messages with the encryption in 1 and in 2 worker threads
 * (src/smtp/adapters/encrypt-pool.ts) next to encryption on the event loop and no
 * encryption, interleaved (harness.ts): the throughput of 2 workers against 1.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { EncryptPool, pooledEncryptor } from '../src/smtp/adapters/encrypt-pool.js';
import { recryptEncryptor } from '../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../src/smtp/lmtp-delivery.js';
import { startMxServer } from '../src/smtp/mx-server.js';
import type { MessageEncryptor, RecipientDirectory } from '../src/smtp/ports.js';
import { startLmtpServer } from '../src/store/lmtp/index.js';
import { createMaildirStore } from '../src/store/maildir/index.js';
import { compare, formatResults } from './harness.js';

const USER = 'bench@gateway.test';
/**
 * Concurrent SMTP connections. The embedded store's LMTP listener answers each new
 * connection only after a reverse DNS lookup (~100 ms here), a latency that would hide
 * the CPU cost being measured; enough concurrent senders overlap it.
 */
const CONCURRENCY = 16;

function groupCertificate(dir: string): Uint8Array {
  const key = join(dir, 'group.key');
  execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key],
    { stdio: 'ignore' },
  );
  return new Uint8Array(
    execFileSync('openssl', [
      'req',
      '-new',
      '-x509',
      '-key',
      key,
      '-days',
      '2',
      '-subj',
      '/CN=bench group',
      '-outform',
      'DER',
    ]),
  );
}

function message(size: number, n: number): Buffer {
  const head = `From: someone@sender.example\r\nTo: ${USER}\r\nSubject: bench ${n}\r\nMessage-ID: <bench.${n}.${randomBytes(4).toString('hex')}@sender.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
  const lines: string[] = [];
  const body = randomBytes(Math.ceil(((size - head.length) * 3) / 4)).toString('base64');
  for (let i = 0; i < body.length; i += 76) lines.push(body.slice(i, i + 76));
  return Buffer.from(head + lines.join('\r\n') + '\r\n');
}

async function throughput(port: number, size: number, count: number): Promise<number> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    pool: true,
    maxConnections: CONCURRENCY,
    maxMessages: Infinity,
    ignoreTLS: true,
  });
  const messages = Array.from({ length: count }, (_, n) => message(size, n));
  const started = process.hrtime.bigint();
  await Promise.all(
    messages.map((raw) =>
      transport.sendMail({ envelope: { from: 'someone@sender.example', to: [USER] }, raw }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  transport.close();
  return count / seconds;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'recrypt-bench-smtp-'));
  const certificate = groupCertificate(dir);
  const store = await createMaildirStore({ root: join(dir, 'store') });
  await store.createUser(USER);
  const lmtp = await startLmtpServer({ store, port: 0 });
  const directory: RecipientDirectory = {
    resolve: async () => ({ kind: 'local', mailbox: USER, groupCertificate: certificate }),
  };
  const common = {
    port: 0,
    banner: 'bench',
    hostname: 'mx.bench.test',
    maxSize: 64 * 1024 * 1024,
    localDomains: ['gateway.test'],
    directory,
    delivery: lmtpDelivery({ host: '127.0.0.1', port: lmtp.port }),
    // No network in a benchmark: every lookup is NXDOMAIN (same for both paths).
    dnsResolver: async () => {
      throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
    },
  };
  const plain: MessageEncryptor = {
    isAlreadyForGroup: () => true,
    encryptForGroup: () => {
      throw new Error('not used');
    },
  };
  const encrypting = await startMxServer({ ...common, encryptor: recryptEncryptor() });
  const baseline = await startMxServer({ ...common, encryptor: plain });
  const pools = [new EncryptPool({ size: 1 }), new EncryptPool({ size: 2 })];
  const pooled = await Promise.all(
    pools.map((pool) =>
      startMxServer({ ...common, encryptor: pooledEncryptor(recryptEncryptor(), pool) }),
    ),
  );
  try {
    console.log(
      `MX → embedded store LMTP, ${CONCURRENCY} concurrent SMTP connections, messages/s (best of 3 alternating rounds)`,
    );
    console.log('size    | no encryption | encrypt on arrival | ratio | cost');
    for (const [label, size, count] of [
      ['10 KB', 10 * 1024, 400],
      ['1 MB', 1024 * 1024, 48],
    ] as const) {
      await throughput(baseline.port, size, 10);
      await throughput(encrypting.port, size, 10);
      let base = 0;
      let enc = 0;
      for (let round = 0; round < 3; round++) {
        base = Math.max(base, await throughput(baseline.port, size, count));
        enc = Math.max(enc, await throughput(encrypting.port, size, count));
      }
      const ratio = enc / base;
      console.log(
        `${label.padEnd(7)} | ${base.toFixed(1).padStart(13)} | ${enc.toFixed(1).padStart(18)} | ${ratio.toFixed(2).padStart(5)} | ${((1 - ratio) * 100).toFixed(1)}%`,
      );
    }
    const count = 48;
    // ms for the whole batch (the harness's unit: lower is better).
    const batch = (port: number) => async () =>
      (count / (await throughput(port, 1024 * 1024, count))) * 1000;
    const results = await compare(
      [
        { name: 'no encryption', run: batch(baseline.port) },
        { name: 'encrypt on the event loop', run: batch(encrypting.port) },
        { name: 'encrypt in 1 worker (workers: 1)', run: batch(pooled[0]!.port) },
        { name: 'encrypt in 2 workers (workers: 2)', run: batch(pooled[1]!.port) },
      ],
      { rounds: Number(process.env.BENCH_ROUNDS ?? 3) },
    );
    console.log(
      `\nconfig workers: ${count} × 1 MB, ${CONCURRENCY} connections, ms per batch (interleaved rounds):`,
    );
    console.log(formatResults(results, 'ms'));
    const one = results.get('encrypt in 1 worker (workers: 1)')!;
    const two = results.get('encrypt in 2 workers (workers: 2)')!;
    console.log(
      `  throughput, 2 workers against 1: ${(one.median / two.median).toFixed(2)}× median, ${(one.best / two.best).toFixed(2)}× best`,
    );
  } finally {
    for (const mx of pooled) await mx.close();
    for (const pool of pools) await pool.close();
    await encrypting.close();
    await baseline.close();
    await lmtp.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
