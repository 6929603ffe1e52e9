/**
 * Submission throughput with 1, 10 and 100 recipients on other servers, side by side in
 * one run (harness.ts: interleaved rounds):
 *  - plain: no recipient has a key (policy `send`): each gets the message as it is;
 *  - encrypted: every recipient has a published P-256 group certificate: the message is
 *    encrypted once to all of them and the sender (docs/sending.md).
 * Both go through the real submission server (smtp-server, STARTTLS, AUTH once per
 * connection) driven by nodemailer. Device login, the recipient directory, key discovery
 * and the outbound queue answer from memory in both paths alike: the bench measures the
 * submission path, not scrypt, HTTPS fetches or the queue's fsyncs (one per recipient in
 * both paths; on this shared machine their noise swamped the difference, and the queue's
 * own cost is the outbound part's to measure).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { ensureTlsMaterial } from '../src/config/tls.js';
import type { DeviceDirectory } from '../src/imap/ports.js';
import type { OutboundQueue } from '../src/outbound/index.js';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../src/recrypt/index.js';
import type { KeyAnswer, KeyDiscovery } from '../src/submission/key-sources.js';
import { startSubmissionServer } from '../src/submission/server.js';
import { compare, expectNotFaster, formatResults, ratio, SanityChecks, timeMs } from './harness.js';

const SENDER = 'alice@a.example';
const PASSWORD = 'bench-password';
/** Messages per timed sample: more where one message takes little time (steadier medians). */
const messagesFor = (recipients: number): number =>
  recipients >= 100 ? 3 : recipients >= 10 ? 8 : 16;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'recrypt-bench-submission-'));
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const certificate = (address: string) =>
    issueGroupCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(randomScalar()),
      address,
      now,
    });
  const senderCertificate = await certificate(SENDER);
  const recipients = Array.from({ length: 100 }, (_, i) => `r${i}@b.example`);
  // Each its own group certificate: the envelope gets two recipient infos per distinct one.
  const certificates = new Map<string, Uint8Array>();
  for (const address of recipients) certificates.set(address, await certificate(address));
  const tls = await ensureTlsMaterial(dir, undefined, now, 'localhost');
  const logger = pino({ enabled: false });
  let queued = 0;
  const queue: OutboundQueue = {
    enqueue: (messages) => Promise.resolve(messages.map(() => String(queued++))),
    prepare: (messages) =>
      Promise.resolve({
        ids: messages.map(() => String(queued++)),
        commit: () => Promise.resolve(),
        abort: () => Promise.resolve(),
      }),
    size: () => Promise.resolve(queued),
    close: () => Promise.resolve(),
  };
  const devices: DeviceDirectory = {
    authenticate: (address, password) =>
      Promise.resolve(
        address === SENDER && password === PASSWORD
          ? {
              address,
              deviceId: '01',
              keys: { deviceId: new Uint8Array(82), wrapEncoding: 'absent', keys: new Map() },
            }
          : null,
      ),
    onDeviceRevoked: () => () => undefined,
  };
  const discoveries = (withKeys: boolean): KeyDiscovery => ({
    lookup: (address): Promise<KeyAnswer> =>
      Promise.resolve(
        withKeys
          ? {
              kind: 'key',
              source: 'profile',
              certificate: certificates.get(address)!,
              provenance: 'https://b.example/',
              udf: 'BENCH',
              validUntil: new Date(Date.now() + 3_600_000),
              requireEncryption: false,
            }
          : { kind: 'none', reason: 'bench', validUntil: new Date(Date.now() + 3_600_000) },
      ),
  });
  const servers = await Promise.all(
    [false, true].map((withKeys) =>
      startSubmissionServer({
        host: '127.0.0.1',
        port: 0,
        tlsPort: 0,
        tls: { key: tls.key, cert: tls.cert },
        hostname: 'localhost',
        maxSize: 25 * 1024 * 1024,
        maxRecipients: 100,
        rateLimit: { perMinute: 1_000_000, burst: 1_000_000 },
        withoutKey: 'send',
        hideSubject: false,
        devices,
        directory: {
          resolve: (address) =>
            Promise.resolve(
              address.toLowerCase() === SENDER
                ? { kind: 'local', mailbox: SENDER, groupCertificate: senderCertificate }
                : { kind: 'not-local' },
            ),
        },
        discovery: discoveries(withKeys),
        delivery: { deliver: () => Promise.resolve([]) },
        queue,
        sentCopies: null,
        logger,
      }),
    ),
  );
  const body = 'x'.repeat(76) + '\r\n';
  const text = body.repeat(Math.ceil((10 * 1024) / body.length));
  const transports = servers.map((server) =>
    nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port,
      pool: true,
      maxConnections: 1,
      maxMessages: Infinity,
      auth: { user: SENDER, pass: PASSWORD },
      tls: { rejectUnauthorized: false },
    }),
  );
  const send = (index: number, count: number) => () =>
    timeMs(async () => {
      for (let i = 0; i < messagesFor(count); i++)
        await transports[index]!.sendMail({
          from: SENDER,
          to: recipients.slice(0, count),
          subject: 'bench',
          text,
        });
    }).then((ms) => ms / messagesFor(count));

  try {
    console.log('ms per submitted message (10 KB body), nodemailer over STARTTLS:');
    const checks = new SanityChecks();
    for (const count of [1, 10, 100]) {
      const results = await compare(
        [
          { name: `plain, ${count} rcpt`, run: send(0, count) },
          { name: `encrypted, ${count} rcpt`, run: send(1, count) },
        ],
        { rounds: 9 },
      );
      console.log(formatResults(results, 'ms', 1));
      const enc = results.get(`encrypted, ${count} rcpt`)!;
      const plain = results.get(`plain, ${count} rcpt`)!;
      console.log(
        `  ${count} rcpt: plain ${(1000 / plain.median).toFixed(1)} msg/s, encrypted ` +
          `${(1000 / enc.median).toFixed(1)} msg/s; encrypted/plain time ` +
          ratio(results, `encrypted, ${count} rcpt`, `plain, ${count} rcpt`),
      );
      checks.check(() =>
        expectNotFaster(results, `encrypted, ${count} rcpt`, `plain, ${count} rcpt`, 0.25),
      );
    }
    checks.throwIfAny();
  } finally {
    for (const transport of transports) transport.close();
    for (const server of servers) await server.close();
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
