/**
 * The per-user index (`recrypt-index.sqlite`) is a cache of the Maildir (src/store/README.md,
 * "Index"): a damaged one is rebuilt from the files, it never makes SELECT fail or LMTP
 * answer 451. For each kind of damage — truncated, overwritten with garbage, a version
 * this code does not know, a table of another layout — the store is reopened on the
 * damaged file, then Python's imaplib SELECTs INBOX and sees the same UIDs, sizes and
 * structures as before, and swaks delivers a new message over LMTP.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore } from '../../src/store/backend.js';
import { startImapServer, type ImapServerHandle } from '../../src/store/imap/index.js';
import { startLmtpServer, type LmtpServerHandle } from '../../src/store/lmtp/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { MASTER } from '../helpers/store-imap.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const swaks = requireBinary('swaks');
const python = requireBinary('python3');
const USER = 'alice@example.com';
const tmp = tempDir('recrypt-index-rebuild-');
const root = join(tmp.path, 'mail');
const indexFile = join(root, USER, 'recrypt-index.sqlite');
const socket = join(tmp.path, 'lmtp.sock');

interface Running {
  store: MailStore;
  imap: ImapServerHandle;
  lmtp: LmtpServerHandle;
}

async function startAll(): Promise<Running> {
  const store = await createMaildirStore({ root });
  const imap = await startImapServer({ store, master: MASTER });
  const lmtp = await startLmtpServer({ store, path: socket });
  return { store, imap, lmtp };
}

async function stopAll(running: Running): Promise<void> {
  await running.imap.close();
  await running.lmtp.close();
  await running.store.close();
}

async function deliver(subject: string): Promise<string> {
  const out = await run(
    swaks,
    [
      '--protocol',
      'LMTP',
      '--socket',
      socket,
      '--from',
      'sender@example.net',
      '--to',
      USER,
      '--header',
      `Subject: ${subject}`,
      '--body',
      `body of ${subject}`,
    ],
    { timeout: 30_000 },
  ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return out.stdout;
}

/** SELECT INBOX with imaplib; the SELECT reply and one line per message (UID, size, structure). */
async function listInbox(port: number): Promise<{ select: string; messages: string[] }> {
  const script = `
import imaplib, sys, json
m = imaplib.IMAP4('127.0.0.1', ${port})
m.authenticate('PLAIN', lambda _: ${JSON.stringify(`${USER}\u0000${MASTER.user}\u0000${MASTER.password}`)}.encode())
typ, data = m.select('INBOX')
out = {'select': typ + ' ' + b' '.join(data).decode(), 'messages': []}
if typ == 'OK':
    typ, data = m.uid('FETCH', '1:*', '(RFC822.SIZE BODYSTRUCTURE)')
    out['messages'] = [d.decode() for d in data if isinstance(d, bytes)]
m.logout()
print(json.dumps(out))
`;
  const { stdout } = await run(python, ['-c', script], { timeout: 30_000 });
  return JSON.parse(stdout) as { select: string; messages: string[] };
}

const damages: Array<[string, () => Promise<void> | void]> = [
  ['truncated to half', () => truncateSync(indexFile, Math.floor(statSync(indexFile).size / 2))],
  [
    'overwritten with garbage',
    () => writeFileSync(indexFile, Buffer.alloc(statSync(indexFile).size, 0x5a)),
  ],
  [
    'pages in the middle overwritten',
    () => {
      const bytes = readFileSync(indexFile);
      bytes.fill(0xa5, 4096, bytes.length);
      writeFileSync(indexFile, bytes);
    },
  ],
  [
    'an unknown version',
    () =>
      run(python, [
        '-c',
        `import sqlite3; c = sqlite3.connect(${JSON.stringify(indexFile)}); c.execute('PRAGMA user_version = 99'); c.commit()`,
      ]).then(() => undefined),
  ],
  [
    'a table of another layout',
    () =>
      run(python, [
        '-c',
        `import sqlite3; c = sqlite3.connect(${JSON.stringify(indexFile)}); c.execute('DROP TABLE messages'); c.execute('CREATE TABLE messages (id INTEGER PRIMARY KEY, blob BLOB)'); c.execute('PRAGMA user_version = 0'); c.commit()`,
      ]).then(() => undefined),
  ],
];

let before: { select: string; messages: string[] };
let delivered = 3;

beforeAll(async () => {
  const running = await startAll();
  await running.store.createUser(USER);
  for (let i = 1; i <= delivered; i++) {
    expect(await deliver(`message ${i}`)).toMatch(/^<- {2}250 2\.6\.0 Saved as UID \d+/m);
  }
  before = await listInbox(running.imap.port);
  expect(before.messages).toHaveLength(delivered);
  await stopAll(running);
});

afterAll(() => tmp.remove());

describe('a damaged per-user index is rebuilt', () => {
  it.each(damages)(
    '%s: SELECT works, UIDs and structures kept, LMTP delivers',
    async (_, damage) => {
      await damage();
      const running = await startAll();
      try {
        const after = await listInbox(running.imap.port);
        expect(after.select).toMatch(/^OK /);
        expect(after.messages).toEqual(before.messages);
        const reply = await deliver(`after damage ${delivered + 1}`);
        expect(reply).toMatch(
          new RegExp(`^<- {2}250 2\\.6\\.0 Saved as UID ${delivered + 1}$`, 'm'),
        );
        delivered++;
        const latest = await listInbox(running.imap.port);
        expect(latest.messages.slice(0, before.messages.length)).toEqual(before.messages);
        expect(latest.messages).toHaveLength(delivered);
        before = latest;
      } finally {
        await stopAll(running);
      }
    },
  );
});
