import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxEvent, MailStore } from '../../src/store/backend.js';
import {
  createLmtpMetrics,
  startLmtpServer,
  type LmtpServerHandle,
} from '../../src/store/lmtp/index.js';
import { createMaildirStore, type FaultHook } from '../../src/store/maildir/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const FIXTURE = join(import.meta.dirname, '../fixtures/store/lmtp-message.eml');
const MAX_SIZE = 64 * 1024;
const tmp = tempDir('recrypt-lmtp-');
const swaks = requireBinary('swaks');

let failNext: string | null = null;
// FAKE (only where the test says so): a full or failing disk cannot be produced on
// demand, so the store's fault hook throws the errno the real write would have.
const fault: FaultHook = (op) => {
  if (failNext !== null && op === 'write-message') {
    const code = failNext;
    failNext = null;
    throw Object.assign(new Error(code), { code });
  }
};

let store: MailStore;
let server: LmtpServerHandle;
const registry = new Registry();
const metrics = createLmtpMetrics(registry);
const root = join(tmp.path, 'root');

beforeAll(async () => {
  store = await createMaildirStore({ root, fault });
  await store.createUser('alice@example.com');
  await store.createUser('bob@example.com');
  server = await startLmtpServer({ store, port: 0, maxSize: MAX_SIZE, metrics });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  tmp.remove();
});

async function swaksTranscript(args: string[]): Promise<string> {
  const argv = [
    '--protocol',
    'LMTP',
    '--server',
    '127.0.0.1',
    '--port',
    String(server.port),
    '--from',
    'sender@example.net',
    ...args,
  ];
  // swaks exits non-zero when a recipient or the data is refused: keep its transcript
  const out = await run(swaks, argv, { timeout: 30_000 }).catch((err: { stdout?: string }) => ({
    stdout: err.stdout ?? '',
  }));
  return out.stdout;
}

/** Server replies from a swaks transcript, e.g. `250 2.6.0 Saved as UID 1`. */
function replies(transcript: string): string[] {
  return transcript
    .split('\n')
    .filter((l) => /^<(-|\*\*)\s/.test(l))
    .map((l) => l.replace(/^<(-|\*\*)\s+/, ''));
}

/** The message bytes swaks put on the wire after DATA, dot-unstuffed: what the server must store. */
function sentData(transcript: string): Buffer {
  const lines = transcript.split('\n');
  const start = lines.findIndex((l) => l.startsWith('<-  354')) + 1;
  const end = lines.indexOf(' -> .', start);
  const data = lines.slice(start, end).map((l) => l.slice(4).replace(/\r$/, '').replace(/^\./, ''));
  return Buffer.from(data.map((l) => `${l}\r\n`).join(''));
}

async function swaksLmtp(args: string[]): Promise<string[]> {
  return replies(await swaksTranscript(args));
}

async function inbox(user: string): Promise<Buffer[]> {
  const box = await (await store.openUser(user)).openMailbox('INBOX', { readOnly: true });
  const out: Buffer[] = [];
  for (const r of box.records()) out.push(Buffer.from(await box.read(r.uid)));
  await box.close();
  return out;
}

describe('LMTP listener', () => {
  it('swaks: one reply per recipient, unknown user 550 5.1.1, stored bytes equal the sent ones', async () => {
    const before = (await inbox('alice@example.com')).length;
    const transcript = await swaksTranscript([
      '--to',
      'alice@example.com,nobody@example.com,Bob@Example.COM',
      '--data',
      `@${FIXTURE}`,
    ]);
    const got = replies(transcript);
    expect(got.filter((r) => r.startsWith('550 5.1.1'))).toHaveLength(1);
    const afterData = got.slice(got.findIndex((r) => r.startsWith('354')) + 1);
    expect(afterData.filter((r) => /^250 2\.6\.0/.test(r))).toHaveLength(2);
    // swaks dot-stuffs the fixture and ends DATA with its own CRLF: compare with the wire
    const sent = sentData(transcript);
    expect(sent.subarray(0, readFileSync(FIXTURE).length)).toEqual(readFileSync(FIXTURE));
    expect(transcript).toContain(' -> ..A line that starts with a dot');
    const alice = await inbox('alice@example.com');
    expect(alice).toHaveLength(before + 1);
    expect(alice.at(-1)).toEqual(sent);
    expect((await inbox('bob@example.com')).at(-1)).toEqual(sent);
  });

  it('nodemailer LMTP transport: accepted and rejected recipients, raw bytes kept', async () => {
    const transport = nodemailer.createTransport({
      lmtp: true,
      host: '127.0.0.1',
      port: server.port,
      ignoreTLS: true,
    });
    try {
      const raw = readFileSync(FIXTURE);
      const info = await transport.sendMail({
        envelope: { from: 'sender@example.net', to: ['bob@example.com', 'ghost@example.com'] },
        raw,
      });
      expect(info.accepted).toEqual(['bob@example.com']);
      expect(info.rejected).toEqual(['ghost@example.com']);
      expect((await inbox('bob@example.com')).at(-1)).toEqual(raw);
    } finally {
      transport.close();
    }
  });

  it('refuses a message over the size limit with 552 for every recipient and stores nothing', async () => {
    const count = (await inbox('alice@example.com')).length;
    const replies = await swaksLmtp([
      '--to',
      'alice@example.com,bob@example.com',
      '--body',
      'x'.repeat(MAX_SIZE + 10),
    ]);
    expect(replies.filter((r) => r.startsWith('552 5.3.4'))).toHaveLength(2);
    expect(await inbox('alice@example.com')).toHaveLength(count);
  });

  it.each([
    ['ENOSPC', '452 4.2.2'],
    ['EIO', '451 4.3.0'],
  ])(
    'FAKE disk fault %s → %s for that recipient, the other still delivered, nothing half-written',
    async (code, reply) => {
      const aliceBefore = (await inbox('alice@example.com')).length;
      const bobBefore = (await inbox('bob@example.com')).length;
      failNext = code;
      const replies = await swaksLmtp([
        '--to',
        'alice@example.com,bob@example.com',
        '--data',
        `@${FIXTURE}`,
      ]);
      const afterData = replies.slice(replies.findIndex((r) => r.startsWith('354')) + 1);
      expect(afterData.filter((r) => r.startsWith(reply))).toHaveLength(1);
      expect(afterData.filter((r) => r.startsWith('250 2.6.0'))).toHaveLength(1);
      expect(
        (await inbox('alice@example.com')).length + (await inbox('bob@example.com')).length,
      ).toBe(aliceBefore + bobBefore + 1);
      for (const user of ['alice@example.com', 'bob@example.com']) {
        expect(readdirSync(join(root, user, 'Maildir', 'tmp'))).toEqual([]);
      }
    },
  );

  it('a delivery reaches a session that has INBOX open as an exists event, \\Recent for it', async () => {
    const box = await (
      await store.openUser('alice@example.com')
    ).openMailbox('INBOX', { readOnly: false });
    const events: MailboxEvent[] = [];
    box.onEvent((e) => events.push(e));
    const got = await swaksLmtp(['--to', 'alice@example.com', '--data', `@${FIXTURE}`]);
    const uid = Number(/Saved as UID (\d+)/.exec(got.join('\n'))?.[1]);
    expect(events).toEqual([{ type: 'exists', uids: [uid] }]);
    expect(box.isRecent(uid)).toBe(true);
    await box.close();
  });

  it('counts each recipient by result: stored, temp_failed (4xx), rejected (5xx)', async () => {
    const counts = async () => {
      const values = (await metrics.deliveries.get()).values;
      const of = (result: string) => values.find((v) => v.labels.result === result)?.value ?? 0;
      return { stored: of('stored'), temp_failed: of('temp_failed'), rejected: of('rejected') };
    };
    const before = await counts();
    failNext = 'ENOSPC';
    await swaksLmtp(['--to', 'alice@example.com,bob@example.com', '--data', `@${FIXTURE}`]);
    await swaksLmtp(['--to', 'alice@example.com', '--body', 'x'.repeat(MAX_SIZE + 10)]);
    expect(await counts()).toEqual({
      stored: before.stored + 1,
      temp_failed: before.temp_failed + 1,
      rejected: before.rejected + 1,
    });
    expect(await registry.metrics()).not.toContain('example.com');
  });

  it('listens on loopback and offers neither AUTH nor STARTTLS', async () => {
    expect(server.host).toBe('127.0.0.1');
    const replies = await swaksLmtp(['--to', 'alice@example.com', '--quit-after', 'LHLO']);
    expect(replies.join('\n')).not.toMatch(/AUTH|STARTTLS/);
    expect(replies.join('\n')).toMatch(/ENHANCEDSTATUSCODES/);
  });
});
