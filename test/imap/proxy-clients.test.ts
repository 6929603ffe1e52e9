/**
 * The proxy in front of a real Dovecot and the embedded store: messages encrypted to the user's group by real
 * openssl, delivered over LMTP, fetched through the proxy by clients no one here wrote
 * (Python's imaplib, curl, imapflow, mbsync) and decrypted by `openssl cms` with the
 * fetching device's key.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { STORE_KINDS, startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { decryptWith, encryptToGroup, type TestDevice } from '../helpers/proxy-pki.js';

const run = promisify(execFile);
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'imap');

/** Originals of every size class, from empty to past Thunderbird's 96 KiB chunking threshold. */
const SIZES = [0, 1_000, 150_000, 1_200_000];

function original(size: number, seed: number): Buffer {
  const head = Buffer.from(`From: bob@example.org\r\nSubject: message ${seed}\r\n\r\n`);
  const body = Buffer.alloc(Math.max(0, size - head.length));
  for (let i = 0; i < body.length; i++) body[i] = i % 78 === 77 ? 10 : 32 + ((i * (seed + 3)) % 94);
  return size === 0 ? Buffer.alloc(0) : Buffer.concat([head, body]).subarray(0, size);
}

describe.each(STORE_KINDS)('IMAP proxy with real clients (%s upstream)', (kind) => {
  let h: ProxyHarness;
  const originals: Buffer[] = [];
  const stored: Buffer[] = [];
  let caFile: string;

  beforeAll(async () => {
    h = await startProxyHarness({}, 2, kind);
    caFile = join(h.dir, 'proxy-ca.pem');
    writeFileSync(caFile, h.tlsCert);
    for (const [index, size] of SIZES.entries()) {
      const plain = original(size, index);
      const message = await encryptToGroup(plain, h.user.group, `size ${size}`);
      originals.push(plain);
      stored.push(message);
      await h.deliver(message);
    }
  });
  afterAll(async () => {
    await h?.stop();
  });

  const device = (i: number): TestDevice => h.user.devices[i]!;

  function imapflow(d: TestDevice, port = h.proxy.ports.tls!): ImapFlow {
    return new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: h.user.address, pass: d.password },
      logger: false,
    });
  }

  it('python imaplib: BODY[], RFC822, BODY[TEXT], BODY[]<0.1000> and RFC822.SIZE, each device decrypting only its own', async () => {
    const python = requireBinary('python3');
    const items = ['BODY.PEEK[]', 'RFC822', 'BODY.PEEK[TEXT]', 'BODY.PEEK[]<0.1000>'];
    const outputs: Record<number, string> = {};
    for (const [i, mode] of [
      [0, 'ssl'],
      [1, 'starttls'],
    ] as const) {
      const out = join(h.dir, `imaplib-${i}`);
      mkdirSync(out);
      const port = mode === 'ssl' ? h.proxy.ports.tls! : h.proxy.ports.starttls!;
      await run(
        python,
        [
          join(fixtures, 'imaplib-fetch.py'),
          mode,
          '127.0.0.1',
          String(port),
          caFile,
          h.user.address,
          device(i).password,
          out,
          ...items,
        ],
        {
          maxBuffer: 1 << 20,
          timeout: 30_000,
        },
      );
      outputs[i] = out;
    }
    const uids = readdirSync(outputs[0]!)
      .filter((f) => f.endsWith('-size.txt'))
      .map((f) => f.split('-')[0]!);
    expect(uids.length).toBe(SIZES.length);
    for (const [index, uid] of uids.sort((a, b) => Number(a) - Number(b)).entries()) {
      const perDevice: Buffer[] = [];
      for (const i of [0, 1]) {
        const read = (n: number): Buffer => readFileSync(join(outputs[i]!, `${uid}-${n}.bin`));
        const body = read(0);
        expect(Number(readFileSync(join(outputs[i]!, `${uid}-size.txt`), 'utf8'))).toBe(
          body.length,
        );
        expect((await decryptWith(body, device(i))).equals(originals[index]!)).toBe(true);
        expect(read(1).equals(body)).toBe(true);
        const split = body.indexOf('\r\n\r\n') + 4;
        expect(read(2).equals(body.subarray(split))).toBe(true);
        expect(read(3).equals(body.subarray(0, 1000))).toBe(true);
        perDevice.push(body);
      }
      await expect(decryptWith(perDevice[0]!, device(1))).rejects.toThrow(/failed/);
      await expect(decryptWith(perDevice[1]!, device(0))).rejects.toThrow(/failed/);
    }
  });

  it('curl imaps:// fetches a message the device decrypts', async () => {
    const curl = requireBinary('curl');
    const url = `imaps://127.0.0.1:${h.proxy.ports.tls}/INBOX;UID=2`;
    const { stdout } = await run(
      curl,
      [
        '-s',
        '--cacert',
        caFile,
        '--insecure',
        '-u',
        `${h.user.address}:${device(0).password}`,
        url,
      ],
      {
        encoding: 'buffer',
        maxBuffer: 1 << 24,
      },
    );
    expect((await decryptWith(stdout, device(0))).equals(originals[1]!)).toBe(true);
  });

  it("imapflow in Thunderbird's pattern (64 KiB partials) reassembles into a message the device decrypts", async () => {
    for (const fresh of [false, true]) {
      const client = imapflow(device(1));
      await client.connect();
      try {
        await client.mailboxOpen('INBOX');
        const uid = 4;
        // Dovecot's LMTP adds Return-Path and Received: the stored size is the server's.
        const info = await client.fetchOne(String(uid), { size: true }, { uid: true });
        const size = (info as { size: number }).size;
        expect(size).toBeGreaterThanOrEqual(stored[3]!.length);
        const chunks: Buffer[] = [];
        // fresh: skip the first chunk in this session, so the proxy must fetch the prefix itself.
        const starts: number[] = [];
        for (let start = 0; start < size; start += 65536) starts.push(start);
        const order = fresh ? [...starts.slice(1), starts[0]!] : starts;
        const byStart = new Map<number, Buffer>();
        for (const start of order) {
          const message = await client.fetchOne(
            String(uid),
            { source: { start, maxLength: 65536 } },
            { uid: true },
          );
          expect(message).not.toBe(false);
          byStart.set(start, (message as { source: Buffer }).source);
        }
        for (const start of starts) chunks.push(byStart.get(start)!);
        const whole = Buffer.concat(chunks);
        expect(whole.length).toBe(size);
        expect((await decryptWith(whole, device(1))).equals(originals[3]!)).toBe(true);
      } finally {
        await client.logout();
      }
    }
  });

  it('mbsync copies the mailbox into a Maildir whose messages the device decrypts', async () => {
    const mbsync = requireBinary('mbsync');
    const local = join(h.dir, 'mbsync-local');
    mkdirSync(local);
    const config = join(h.dir, 'mbsyncrc');
    writeFileSync(
      config,
      readFileSync(join(fixtures, 'mbsyncrc.template'), 'utf8')
        .replaceAll('$PORT', String(h.proxy.ports.tls))
        .replaceAll('$USER', h.user.address)
        .replaceAll('$PASS', device(0).password)
        .replaceAll('$CERT', caFile)
        .replaceAll('$LOCAL', `${local}/`),
    );
    await run(mbsync, ['-c', config, '-a'], { maxBuffer: 1 << 20 });
    const paths = ['new', 'cur'].flatMap((sub) =>
      readdirSync(join(local, 'INBOX', sub)).map((f) => join(local, 'INBOX', sub, f)),
    );
    expect(paths.length).toBe(SIZES.length);
    const decrypted = await Promise.all(
      paths.map(async (path) => decryptWith(readFileSync(path), device(0))),
    );
    expect(decrypted.map((d) => d.length).sort((a, b) => a - b)).toEqual(
      [...SIZES].sort((a, b) => a - b),
    );
    for (const plain of originals) expect(decrypted.some((d) => d.equals(plain))).toBe(true);
  });

  it('IDLE, flags, SEARCH on headers, MOVE and CAPABILITY filtering work through the proxy', async () => {
    const client = imapflow(device(0));
    await client.connect();
    try {
      for (const banned of [
        'COMPRESS=DEFLATE',
        'NOTIFY',
        'CATENATE',
        'URLAUTH',
        'BINARY',
        'AUTH=PLAIN',
        'SASL-IR',
      ]) {
        expect(client.capabilities.has(banned)).toBe(false);
      }
      expect(client.capabilities.has('IDLE')).toBe(true);
      await client.mailboxOpen('INBOX');
      const found = await client.search({ header: { subject: 'size 1000' } }, { uid: true });
      expect(found).toEqual([2]);
      await client.messageFlagsAdd('2', ['\\Flagged'], { uid: true });
      const flagged = await client.search({ flagged: true }, { uid: true });
      expect(flagged).toEqual([2]);
      // IDLE: a delivery during IDLE is announced as EXISTS.
      const exists = new Promise<number>((resolve) =>
        client.on('exists', (info: { count: number }) => resolve(info.count)),
      );
      const idle = client.idle();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const extra = await encryptToGroup(original(500, 9), h.user.group, 'during idle');
      await h.deliver(extra);
      expect(await exists).toBe(SIZES.length + 1);
      await client.mailboxCreate('Archive');
      const moved = await client.messageMove(String(SIZES.length + 1), 'Archive', { uid: true });
      expect(moved && moved.uidMap?.size).toBe(1);
      await idle.catch(() => undefined);
      await client.mailboxOpen('Archive');
      const message = await client.fetchOne('1', { source: true }, { uid: true });
      expect(
        (await decryptWith((message as { source: Buffer }).source, device(0))).equals(
          original(500, 9),
        ),
      ).toBe(true);
    } finally {
      await client.logout();
    }
  });
});
