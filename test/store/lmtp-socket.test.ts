/**
 * The embedded store's LMTP on a Unix socket (docs/threat-model.md, "At rest"): LMTP has
 * no login, so only the gateway's own user may reach it. swaks delivers over the socket
 * as that user; as another local user (nobody) it is refused before any greeting, and
 * nothing is stored. A socket left by a killed process is replaced; a live one is not.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore } from '../../src/store/backend.js';
import { startLmtpServer, type LmtpServerHandle } from '../../src/store/lmtp/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const swaks = requireBinary('swaks');
const python = requireBinary('python3');
const runuser = requireBinary('runuser');
const tmp = tempDir('recrypt-lmtp-sock-');
// A directory anyone may enter, so the refusal below is the socket's own mode.
const open = join(tmp.path, 'open');
const socketPath = join(open, 'lmtp.sock');
const USER = 'alice@example.com';

let store: MailStore;
let server: LmtpServerHandle | undefined;

beforeAll(async () => {
  chmodSync(tmp.path, 0o755);
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  store = await createMaildirStore({ root: join(tmp.path, 'mail') });
  await store.createUser(USER);
  server = await startLmtpServer({ store, path: socketPath });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  tmp.remove();
});

async function inboxSize(): Promise<number> {
  const box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
  const size = box.records().length;
  await box.close();
  return size;
}

/** swaks over the socket, optionally as another user; its transcript, failures included. */
async function swaksOverSocket(asUser?: string): Promise<string> {
  const argv = [
    '--protocol',
    'LMTP',
    '--socket',
    socketPath,
    '--from',
    'sender@example.net',
    '--to',
    USER,
    '--body',
    'stored only for the gateway',
  ];
  const [command, args] =
    asUser === undefined ? [swaks, argv] : [runuser, ['-u', asUser, '--', swaks, ...argv]];
  const out = await run(command, args, { timeout: 30_000 }).catch(
    (err: { stdout?: string; stderr?: string }) => ({
      stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }),
  );
  return out.stdout;
}

describe('LMTP on a Unix socket', () => {
  it('the socket is mode 0600 and there is no TCP port', () => {
    const info = lstatSync(socketPath);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o600);
    expect(server!.port).toBe(0);
    expect(server!.path).toBe(socketPath);
  });

  it('swaks as the gateway user delivers over it', async () => {
    const before = await inboxSize();
    expect(await swaksOverSocket()).toMatch(/^<- {2}250 2\.6\.0 Saved as UID \d+/m);
    expect(await inboxSize()).toBe(before + 1);
  });

  it('swaks as another local user is refused and nothing is stored', async () => {
    const before = await inboxSize();
    const transcript = await swaksOverSocket('nobody');
    expect(transcript).toMatch(/Permission denied/i);
    expect(transcript).not.toMatch(/^<- {2}220/m);
    expect(await inboxSize()).toBe(before);
  });

  it("the MX's LMTP client delivers over the socket", async () => {
    const before = await inboxSize();
    const results = await lmtpDelivery({ path: socketPath }).deliver(
      { mailFrom: 'sender@example.net', mailboxes: [USER, 'ghost@example.com'] },
      Buffer.from('Subject: over the socket\r\n\r\nbody\r\n'),
    );
    expect(results.map((r) => [r.mailbox, r.status])).toEqual([
      [USER, 'stored'],
      ['ghost@example.com', 'rejected'],
    ]);
    expect(await inboxSize()).toBe(before + 1);
  });

  it('replaces a socket left by a killed process, refuses to take over a live one', async () => {
    const stale = join(open, 'stale.sock');
    // bind() without listen(), then exit: the file stays, nothing answers (as after kill -9)
    await run(python, [
      '-c',
      `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`,
    ]);
    expect(lstatSync(stale).isSocket()).toBe(true);
    const second = await startLmtpServer({ store, path: stale });
    const third = await startLmtpServer({ store, path: stale }).then(
      async (s) => {
        await s.close();
        return 'started';
      },
      (error: NodeJS.ErrnoException) => error.code,
    );
    expect(third).toBe('EADDRINUSE');
    await second.close();
    expect(existsSync(stale)).toBe(false);
  });

  it('does not remove a file that is not a socket', async () => {
    const plain = join(open, 'plain.sock');
    mkdirSync(plain);
    await expect(startLmtpServer({ store, path: plain })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    expect(readdirSync(open)).toContain('plain.sock');
  });
});
