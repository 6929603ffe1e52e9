import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { MASTER, startStoreServer, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages, STORE_IMAP_FIXTURES } from '../helpers/store-messages.js';
import { makeServerCert } from '../helpers/store-tls.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

/** Real clients no one here wrote, against the real Maildir store, with STARTTLS and master login. */
describe('IMAP server with real clients', () => {
  let s: StoreServer;
  let certPath: string;
  const dir = tempDir('store-imap-tls-');
  const messages = sampleMessages();

  beforeAll(async () => {
    const tls = makeServerCert(dir.path);
    certPath = tls.certPath;
    s = await startStoreServer(['alice', 'bob'], { tls: { key: tls.key, cert: tls.cert } });
    for (const m of messages) await s.store.deliver('alice', m);
  });

  afterAll(async () => {
    await s?.stop();
    dir.remove();
  });

  it("Python's imaplib: STARTTLS, AUTHENTICATE PLAIN with authzid, and a full session", async () => {
    const python = requireBinary('python3');
    const { stdout } = await run(
      python,
      [
        join(STORE_IMAP_FIXTURES, 'imaplib_session.py'),
        '127.0.0.1',
        String(s.server.port),
        'bob',
        MASTER.user,
        MASTER.password,
        certPath,
      ],
      { timeout: 30_000 },
    );
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out.capabilities).toContain('AUTH=PLAIN');
    expect(out.auth).toBe('OK');
    expect((out.list as string[]).join('\n')).toMatch(/\(\\HasNoChildren \\Sent\) "\/" Sent/);
    expect(out.exists).toBe(0);
    expect((out.append as string[])[1]).toMatch(/^\[APPENDUID \d+ 1\]/);
    expect(out.search_all).toBe('1 2');
    expect(out.search_from).toBe('2');
    expect(out.uid_search_subject).toBe('1');
    expect(out.subject_header).toBe('Subject: from imaplib\r\n\r\n');
    expect(out.rfc822_subject).toBe('from imaplib');
    expect(out.rfc822_len).toBe(out.sent_len);
    expect(out.flags_after_rfc822).toMatch(/FLAGS \(\\Seen/);
    expect(out.store).toEqual(['2 (FLAGS (\\Flagged \\Recent))']);
    expect(out.copy).toBe('OK');
    expect([out.create, out.rename, out.delete]).toEqual(['OK', 'OK', 'OK']);
    expect(out.expunge).toEqual(['1']);
    expect(out.status).toMatch(/MESSAGES 2 UIDNEXT 3/);
    // bob's own store saw it all; alice's did not
    const bob = await s.store.openUser('bob');
    expect((await bob.status('INBOX')).messages).toBe(1);
    expect((await bob.status('Archive')).messages).toBe(2);
    expect((await (await s.store.openUser('alice')).status('INBOX')).messages).toBe(
      messages.length,
    );
  });

  describe('curl imap://', () => {
    const auth = (): string[] => [
      '--login-options',
      'AUTH=PLAIN',
      '--sasl-authzid',
      'alice',
      '-u',
      `${MASTER.user}:${MASTER.password}`,
    ];

    it('lists mailboxes with a master login and authzid', async () => {
      const { stdout } = await run(
        requireBinary('curl'),
        ['-sS', ...auth(), `imap://127.0.0.1:${s.server.port}/`],
        { timeout: 30_000 },
      );
      expect(stdout).toMatch(/^\* LIST \(\\HasNoChildren\) "\/" INBOX\r?$/m);
      expect(stdout).toMatch(/\\Trash\) "\/" Trash/);
    });

    it('fetches a message byte for byte over STARTTLS, with SASL-IR', async () => {
      const { stdout } = await run(
        requireBinary('curl'),
        [
          '-sS',
          '--ssl-reqd',
          '--cacert',
          certPath,
          '--sasl-ir',
          ...auth(),
          `imap://127.0.0.1:${s.server.port}/INBOX;UID=2`,
        ],
        { timeout: 30_000, encoding: 'buffer' },
      );
      expect(Buffer.compare(stdout, messages[1] as Buffer)).toBe(0);
    });

    it('refuses the master credential without authzid and a wrong password', async () => {
      const bad = await run(
        requireBinary('curl'),
        [
          '-sS',
          '--login-options',
          'AUTH=PLAIN',
          '-u',
          `alice:${MASTER.password}`,
          `imap://127.0.0.1:${s.server.port}/`,
        ],
        { timeout: 30_000 },
      ).catch((e: { code: number }) => e);
      expect((bad as { code: number }).code).toBe(67);
      const wrong = await run(
        requireBinary('curl'),
        [
          '-sS',
          '--login-options',
          'AUTH=PLAIN',
          '--sasl-authzid',
          'alice',
          '-u',
          `${MASTER.user}:nope`,
          `imap://127.0.0.1:${s.server.port}/`,
        ],
        { timeout: 30_000 },
      ).catch((e: { code: number }) => e);
      expect((wrong as { code: number }).code).toBe(67);
    });
  });

  it('curl imaps:// against implicit TLS (tls.implicit)', async () => {
    const sub = join(dir.path, 'implicit');
    mkdirSync(sub);
    const tls = makeServerCert(sub);
    const implicit = await startStoreServer(['alice'], {
      tls: { key: tls.key, cert: tls.cert, implicit: true },
    });
    try {
      await implicit.store.deliver('alice', messages[0] as Buffer);
      const { stdout } = await run(
        requireBinary('curl'),
        [
          '-sS',
          '--cacert',
          tls.certPath,
          '--login-options',
          'AUTH=PLAIN',
          '--sasl-authzid',
          'alice',
          '-u',
          `${MASTER.user}:${MASTER.password}`,
          `imaps://localhost:${implicit.server.port}/INBOX;UID=1`,
        ],
        { timeout: 30_000, encoding: 'buffer' },
      );
      expect(Buffer.compare(stdout, messages[0] as Buffer)).toBe(0);
    } finally {
      await implicit.stop();
    }
  });

  it('imapflow: fetch, search, flags, move, append, IDLE notification', async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: s.server.port,
      secure: false,
      tls: { ca: [readFileSync(certPath, 'utf8')] },
      auth: {
        user: MASTER.user,
        pass: MASTER.password,
        authzid: 'alice',
        loginMethod: 'AUTH=PLAIN',
      },
      logger: false,
    });
    await client.connect();
    try {
      expect(client.secureConnection).toBe(true);
      const boxes = await client.list();
      expect(boxes.find((b) => b.path === 'Junk')?.specialUse).toBe('\\Junk');
      const lock = await client.getMailboxLock('INBOX');
      try {
        const fetched = [];
        for await (const msg of client.fetch('1:*', {
          uid: true,
          envelope: true,
          bodyStructure: true,
          flags: true,
          size: true,
        }))
          fetched.push(msg);
        expect(fetched.map((m) => m.envelope?.subject)).toEqual([
          'Lunch on Friday',
          'Report für März',
          'Weekly numbers',
        ]);
        expect(fetched[1]?.bodyStructure?.childNodes?.[0]?.childNodes?.[0]?.type).toBe(
          'text/plain',
        );
        expect(fetched.map((m) => m.size)).toEqual(messages.map((m) => m.length));

        const part = await client.download('2', '2', { uid: true });
        const chunks: Buffer[] = [];
        for await (const c of part.content ?? []) chunks.push(c as Buffer);
        expect(Buffer.concat(chunks).subarray(0, 8).toString('latin1')).toBe('%PDF-1.4');

        expect(await client.search({ header: { 'x-priority': '3' } }, { uid: true })).toEqual([3]);
        expect(await client.search({ subject: 'März' }, { uid: true })).toEqual([2]);
        expect(await client.messageFlagsAdd('1', ['\\Flagged', '$Important'], { uid: true })).toBe(
          true,
        );
        const moved = await client.messageMove('3', 'Archive', { uid: true });
        expect(moved && moved.uidMap?.get(3)).toBe(1);
        const appended = await client.append(
          'INBOX',
          'Subject: appended by imapflow\r\n\r\nbody\r\n',
          ['\\Draft'],
        );
        expect(appended && appended.uid).toBe(4);

        const existsSeen = new Promise<number>((resolve) =>
          client.on('exists', (d: { count: number }) => resolve(d.count)),
        );
        const idling = client.idle();
        await new Promise((r) => setTimeout(r, 100));
        await s.store.deliver('alice', messages[0] as Buffer);
        expect(await existsSeen).toBe(4);
        await client.noop();
        await idling;
      } finally {
        lock.release();
      }
      const status = await client.status('Archive', { messages: true });
      expect(status && status.messages).toBe(1);
    } finally {
      await client.logout();
    }
  });
});
