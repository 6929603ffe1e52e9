/**
 * Data at rest and the local attack surface (docs/threat-model.md, "At rest"), on a real
 * `recrypt start` whose data directory an older version left readable (0755 directory,
 * 0644 and 0666 files, a link to a file outside):
 *
 * * after a walkthrough-like run (user added, owner enrolled, device added, a message
 *   delivered over SMTP and fetched through the proxy) every directory under the data
 *   directory is 0700 and every file and socket 0600 — key store with -wal/-shm, the
 *   per-user index with its own, Maildir, queue, TLS, secrets — and the file outside,
 *   reached through a link, was left alone;
 * * swaks --protocol LMTP is refused on every TCP port the gateway listens on and, as
 *   another local user, on the LMTP socket: nothing is stored;
 * * a key-store page damaged on disk makes /readyz answer 503 naming keyStore.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { RawImap } from '../helpers/gateway-imap-raw.js';
import { waitFor, type Spawned } from '../helpers/gateway-process.js';
import {
  enrolUserWithDevice,
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = tempDir('recrypt-at-rest-');
const dataDir = join(tmp.path, 'data');
const configFile = join(tmp.path, 'recrypt.yaml');
const certFile = join(dataDir, 'tls', 'cert.pem');
const outside = join(tmp.path, 'outside.txt');
const ADDRESS = 'alice@example.org';
let ports: GatewayPorts;
let gateway: Spawned | undefined;
let imapPassword = '';

function curl(path: string): { status: number; body: string } {
  const out = execFileSync(
    'curl',
    [
      '-s',
      '--cacert',
      certFile,
      '-w',
      '\n%{http_code}',
      // The operator listener, where /readyz is (docs/admin-api.md).
      `https://127.0.0.1:${ports.operator}${path}`,
    ],
    { encoding: 'utf8' },
  );
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

/** Every entry under `dir` (not following links), with its type and permission bits. */
function entriesUnder(dir: string): Array<{ path: string; kind: string; mode: number }> {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const info = lstatSync(path);
    const kind = info.isDirectory()
      ? 'dir'
      : info.isSymbolicLink()
        ? 'link'
        : info.isSocket()
          ? 'socket'
          : 'file';
    const entry = { path: path.slice(dataDir.length + 1), kind, mode: info.mode & 0o7777 };
    return kind === 'dir' ? [entry, ...entriesUnder(path)] : [entry];
  });
}

/** Messages in the user's mailboxes, counted on disk. */
function storedCount(): number {
  const home = join(dataDir, 'mail', ADDRESS, 'Maildir');
  return ['cur', 'new'].reduce((n, sub) => n + readdirSync(join(home, sub)).length, 0);
}

async function swaksLmtp(target: string[], asUser?: string): Promise<string> {
  const argv = [
    '--protocol',
    'LMTP',
    ...target,
    '--from',
    'intruder@example.net',
    '--to',
    ADDRESS,
    '--body',
    'plaintext planted by a local user',
    '--timeout',
    '5',
  ];
  const [command, args] =
    asUser === undefined ? ['swaks', argv] : ['runuser', ['-u', asUser, '--', 'swaks', ...argv]];
  const out = await run(command, args, { timeout: 60_000 }).catch(
    (err: { stdout?: string; stderr?: string }) => ({
      stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }),
  );
  return out.stdout;
}

beforeAll(async () => {
  for (const name of ['curl', 'swaks', 'runuser', 'ss', 'python3']) requireBinary(name);
  ports = await freeGatewayPorts();
  // What an older version, a restored backup or a careless copy leaves behind.
  mkdirSync(join(dataDir, 'old'), { recursive: true });
  chmodSync(dataDir, 0o755);
  chmodSync(join(dataDir, 'old'), 0o777);
  writeFileSync(join(dataDir, 'leftover.txt'), 'left\n');
  chmodSync(join(dataDir, 'leftover.txt'), 0o644);
  writeFileSync(join(dataDir, 'old', 'notes.txt'), 'notes\n');
  chmodSync(join(dataDir, 'old', 'notes.txt'), 0o666);
  writeFileSync(outside, 'not the gateway’s\n');
  chmodSync(outside, 0o644);
  symlinkSync(outside, join(dataDir, 'outside-link'));
  writeGatewayConfig(tmp.path, ports);
  gateway = await startGatewayProcess(configFile, ports);

  ({ imapPassword } = await enrolUserWithDevice(configFile, ports, ADDRESS));

  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: ports.smtp,
    secure: false,
    ignoreTLS: true,
  });
  await transport.sendMail({
    from: 'bob@sender.example',
    to: ADDRESS,
    subject: 'at rest',
    text: 'stored encrypted, readable by the gateway user only\r\n',
  });
  const reader = await RawImap.open(ports.imap, readFileSync(certFile, 'utf8'));
  try {
    expect(await reader.command(`LOGIN ${ADDRESS} "${imapPassword}"`)).toMatch(/^t\d+ OK/);
    expect(await reader.command('SELECT INBOX')).toMatch(/^t\d+ OK/);
    expect(await reader.command('FETCH 1 (BODY.PEEK[])')).toMatch(/^t\d+ OK/);
  } finally {
    reader.close();
  }
}, 240_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('data at rest', () => {
  it('every directory under the data dir is 0700, every file and socket 0600', () => {
    const entries = entriesUnder(dataDir);
    const names = entries.map((e) => e.path);
    // The walk saw what the review named, so the mode check below covers it.
    for (const expected of [
      'keystore.sqlite',
      'keystore.sqlite-wal',
      'keystore.sqlite-shm',
      `mail/${ADDRESS}/recrypt-index.sqlite`,
      `mail/${ADDRESS}/recrypt-index.sqlite-wal`,
      `mail/${ADDRESS}/Maildir/dovecot-uidlist`,
      'store-lmtp.sock',
      'gateway.key',
      'admin.token',
      'store-master.secret',
      'tls/key.pem',
      'tls/cert.pem',
      'leftover.txt',
      'old/notes.txt',
    ]) {
      expect(names).toContain(expected);
    }
    expect(names.some((n) => /^mail\/[^/]+\/Maildir\/(cur|new)\/./.test(n))).toBe(true);
    const wrong = entries
      .filter((e) => e.kind !== 'link')
      .filter((e) => e.mode !== (e.kind === 'dir' ? 0o700 : 0o600))
      .map((e) => `${e.path} ${e.kind} ${e.mode.toString(8)}`);
    expect(wrong).toEqual([]);
    expect(lstatSync(dataDir).mode & 0o7777).toBe(0o700);
    // Tightening did not follow the link out of the data directory.
    expect(lstatSync(outside).mode & 0o777).toBe(0o644);
  });

  it('LMTP is refused on every TCP port the gateway listens on, and on its socket as another user', async () => {
    const listening = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(`pid=${gateway!.child.pid},`))
      .map((line) => Number(/:(\d+)\s/.exec(line.split(/\s+/)[3] + ' ')?.[1]));
    expect(listening.sort()).toEqual(Object.values(ports).sort());
    const before = storedCount();
    // 10024: where the embedded store's LMTP used to listen.
    const tried = [...listening, 10024];
    // Every port and the socket at once: each attempt waits out its own timeout.
    const [asNobody, ...transcripts] = await Promise.all([
      swaksLmtp(['--socket', join(dataDir, 'store-lmtp.sock')], 'nobody'),
      ...tried.map((port) => swaksLmtp(['--server', '127.0.0.1', '--port', String(port)])),
    ]);
    transcripts.forEach((transcript, i) => {
      expect(transcript, `port ${tried[i]}`).not.toMatch(/^<- {2}250 [\d.]+ Saved/m);
      expect(transcript, `port ${tried[i]}`).not.toMatch(/^<- {2}354/m);
    });
    expect(asNobody).toMatch(/Permission denied/i);
    expect(storedCount()).toBe(before);
  }, 120_000);

  it('/readyz answers 503 naming keyStore once a key-store page is damaged on disk', async () => {
    expect(curl('/readyz').status).toBe(200);
    const file = join(dataDir, 'keystore.sqlite');
    // Move every page into the main file first (a real client, Python's sqlite3), so the
    // damage lands on pages the store really reads from disk.
    await run('python3', [
      '-c',
      `import sqlite3; c = sqlite3.connect(${JSON.stringify(file)}); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()`,
    ]);
    const bytes = readFileSync(file);
    const pageSize = bytes.readUInt16BE(16);
    expect(bytes.length).toBeGreaterThan(4 * pageSize);
    // Pages 2 and 3 (b-tree pages of the schema's first tables), not the header page.
    bytes.fill(0xa5, pageSize, 3 * pageSize);
    writeFileSync(file, bytes);
    await waitFor('/readyz to report the damage', () => curl('/readyz').status === 503, 30_000);
    expect(JSON.parse(curl('/readyz').body)).toEqual({
      status: 'not ready',
      failing: ['keyStore'],
    });
  });
});
