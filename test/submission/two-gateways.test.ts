/**
 * Sending between two real gateways (docs/sending.md): two `recrypt start` processes,
 * two data directories, two domains. alice@a.test sends through A's submission (swaks with
 * STARTTLS and AUTH PLAIN; nodemailer over implicit TLS) to bob@b.test — whose key A finds
 * in the profile B publishes — and to carol@a.test. bob reads through B's proxy, carol and
 * alice (her Sent copy) through A's, each with `openssl cms -decrypt` and their own device
 * key only. No plaintext marker lands anywhere in either data directory. Then the bad
 * input: AUTH before TLS, MAIL before AUTH, a wrong password, a revoked device, a foreign
 * envelope sender, a forged From, and profiles with a bad signature or for another address
 * (served over HTTPS by a stand-in for a third domain) — refused, nothing sent.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { waitFor } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/ports.js';
import { swaks as submitSwaks, swaksAuth } from '../helpers/submission-swaks.js';
import {
  addDevice,
  decryptWith,
  enrolWithDevice,
  fetchThroughProxy,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = tempDir('recrypt-sending-');
const MARKER = 'PLAINTEXT-MARKER-7d1f0c9e';
let a: RunningTestGateway;
let b: RunningTestGateway;
let alice: Device;
let carol: Device;
let bob: Device;
let forged: Server;

/** swaks against A's submission; resolves its whole transcript and exit code. */
const swaks = (args: string[]) => submitSwaks({ port: a.ports.submission }, args);
const auth = swaksAuth;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const info = statSync(path, { throwIfNoEntry: false });
    if (info === undefined) return [];
    return info.isDirectory() ? filesUnder(path) : info.isFile() ? [path] : [];
  });
}

function maildirFiles(gateway: RunningTestGateway, user: string, folder = ''): string[] {
  const base = join(gateway.dataDir, 'mail', user, 'Maildir', folder);
  return ['new', 'cur'].flatMap((sub) =>
    readdirSync(join(base, sub)).map((name) => join(base, sub, name)),
  );
}

/** The S/MIME body (after the header section) of a stored or fetched message. */
function bodyOf(message: Buffer): string {
  const text = message.toString('latin1');
  return text.slice(text.indexOf('\r\n\r\n') + 4).replace(/\r\n/g, '');
}

/** One SMTP exchange on a plain socket: each command's reply line(s), greeting first. */
async function rawSmtp(port: number, commands: string[]): Promise<string[]> {
  const socket = connect({ host: '127.0.0.1', port });
  let buffer = '';
  const replies: string[] = [];
  const reply = () =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const lines = buffer.split('\r\n');
        const last = lines.findIndex((line) => /^\d{3} /.test(line));
        if (last === -1) return false;
        const text = lines.slice(0, last + 1).join('\n');
        buffer = lines.slice(last + 1).join('\r\n');
        resolve(text);
        return true;
      };
      if (check()) return;
      const onData = (chunk: Buffer) => {
        buffer += chunk.toString('latin1');
        if (check()) socket.off('data', onData);
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
  replies.push(await reply());
  for (const command of commands) {
    socket.write(`${command}\r\n`);
    replies.push(await reply());
  }
  socket.destroy();
  return replies;
}

beforeAll(async () => {
  for (const name of ['swaks', 'openssl', 'python3']) requireBinary(name);
  b = await makeGateway(tmp.path, 'b', () => ({}));
  const forgedPort = await freePort();
  // A looks for bob's profile only when mail is sent: his enrolment need not wait for A.
  const bobEnrolled = enrolWithDevice(b, 'bob@b.test');
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'refuse',
      discovery: {
        origins: {
          'b.test': `https://127.0.0.1:${b.ports.admin}`,
          'c.test': `https://127.0.0.1:${forgedPort}`,
        },
        caFile: b.certFile,
      },
    },
    outbound: { routes: { 'b.test': `127.0.0.1:${b.ports.smtp}` } },
  }));
  [bob, alice, carol] = await Promise.all([
    bobEnrolled,
    enrolWithDevice(a, 'alice@a.test'),
    enrolWithDevice(a, 'carol@a.test'),
  ]);

  // A third domain's profile server, with B's certificate (which A trusts): it serves
  // bob's genuine profile for another address, and one whose signature was altered.
  const jws = (
    await run('curl', [
      '-sf',
      '--cacert',
      b.certFile,
      `https://127.0.0.1:${b.ports.admin}/.well-known/mail-profile/bob@b.test`,
    ])
  ).stdout.trim();
  expect(jws.split('.')).toHaveLength(3);
  const [head, payload, signature] = jws.split('.') as [string, string, string];
  const flipped = `${head}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
  forged = createServer(
    {
      key: readFileSync(join(b.dataDir, 'tls', 'key.pem')),
      cert: readFileSync(b.certFile),
    },
    (req, res) => {
      const path = decodeURIComponent(req.url ?? '');
      const body =
        path === '/.well-known/mail-profile/wrong@c.test'
          ? jws
          : path === '/.well-known/mail-profile/badsig@c.test'
            ? flipped
            : undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/jose' });
      res.end(body ?? '');
    },
  );
  await new Promise<void>((resolve) => forged.listen(forgedPort, '127.0.0.1', resolve));
}, 600_000);

afterAll(async () => {
  forged?.close();
  await a?.process.stop(10_000);
  await b?.process.stop(10_000);
  tmp.remove();
});

describe('sending through submission between two gateways', () => {
  let sentBody = '';

  it('alice sends to bob@b.test and carol@a.test; each reads it with their own key only', async () => {
    const data = [
      'From: Alice <alice@a.test>',
      'To: bob@b.test, carol@a.test',
      'Subject: hello from a',
      '',
      `${MARKER} first message`,
      '',
    ].join('\r\n');
    const sent = await swaks([
      ...auth(alice),
      '--from',
      'alice@a.test',
      '--to',
      'bob@b.test,carol@a.test',
      '--data',
      data,
    ]);
    if (sent.code !== 0) console.log(sent.out.slice(-1500), a.process.output().slice(-6000));
    expect(sent.out).toMatch(/<~ +250 2\.6\.0 OK: sent to 2 recipients/);
    expect(sent.code).toBe(0);

    // The Maildir is cheap to watch (a fetch is a Python process); then what bob's client sees.
    await waitFor(
      'bob to have the message at B',
      () =>
        existsSync(join(b.dataDir, 'mail', 'bob@b.test')) &&
        maildirFiles(b, 'bob@b.test').length === 1,
      180_000,
    );
    let atBob: Buffer[] = [];
    await waitFor(
      "bob's client to see it",
      () => (atBob = fetchThroughProxy(b, bob)).length === 1,
      60_000,
    );
    const [forBob] = atBob;
    const readByBob = decryptWith(bob, forBob!)!;
    expect(readByBob.toString('utf8')).toContain(`${MARKER} first message`);
    // The submission fix-ups: Date and Message-ID added inside the envelope.
    expect(readByBob.toString('utf8')).toMatch(/^Date: .+\r\nMessage-ID: <[^>]+@/);
    expect(decryptWith(carol, forBob!)).toBeNull();
    expect(decryptWith(alice, forBob!)).toBeNull();

    const [forCarol] = fetchThroughProxy(a, carol);
    expect(decryptWith(carol, forCarol!)!.toString('utf8')).toContain(`${MARKER} first message`);
    expect(decryptWith(bob, forCarol!)).toBeNull();

    const [sentCopy] = fetchThroughProxy(a, alice, 'Sent');
    expect(decryptWith(alice, sentCopy!)!.toString('utf8')).toContain(`${MARKER} first message`);
    expect(decryptWith(carol, sentCopy!)).toBeNull();

    // One envelope for all: B stored the very bytes A made (it already named bob's group),
    // the same ones carol's and alice's copies hold.
    const atB = maildirFiles(b, 'bob@b.test').map((f) => bodyOf(readFileSync(f)));
    const atA = maildirFiles(a, 'carol@a.test').map((f) => bodyOf(readFileSync(f)));
    expect(atB).toHaveLength(1);
    expect(atB[0]).toBe(atA[0]);
    sentBody = atA[0]!;
    expect(maildirFiles(a, 'alice@a.test', '.Sent').map((f) => bodyOf(readFileSync(f)))).toEqual([
      sentBody,
    ]);
  }, 300_000);

  it('implicit TLS with nodemailer works too', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: a.ports.submissionTls,
      secure: true,
      auth: { user: alice.address, pass: alice.password },
      tls: { ca: readFileSync(a.certFile, 'utf8'), checkServerIdentity: () => undefined },
    });
    const info = await transport.sendMail({
      from: 'alice@a.test',
      to: 'carol@a.test',
      subject: 'second',
      text: `${MARKER} second message`,
    });
    expect(info.response).toMatch(/^250 /);
    const messages = fetchThroughProxy(a, carol);
    expect(messages).toHaveLength(2);
    expect(decryptWith(carol, messages[1]!)!.toString('utf8')).toContain(`${MARKER} second`);
  }, 120_000);

  it('no plaintext marker in either data directory (queues, mail, key store)', () => {
    for (const gateway of [a, b]) {
      const files = filesUnder(gateway.dataDir);
      expect(files.length).toBeGreaterThan(5);
      const leaking = files.filter((file) => readFileSync(file).includes(MARKER));
      expect(leaking).toEqual([]);
    }
  });

  it('recrypt lookup says which key, from where, valid until', async () => {
    // Four read-only lookups: one at a time they would only wait on each other.
    const [remote, local, wrong, badsig] = await Promise.all([
      a.operator(['lookup', 'bob@b.test']),
      a.operator(['lookup', 'Carol@a.test']),
      a.operator(['lookup', 'wrong@c.test']),
      a.operator(['lookup', 'badsig@c.test']),
    ]);
    expect(remote.stderr).toBe('');
    expect(remote.stdout).toContain('bob@b.test: encrypted');
    expect(remote.stdout).toContain('key: profile');
    expect(remote.stdout).toMatch(
      new RegExp(
        `from: https://127\\.0\\.0\\.1:${b.ports.admin}/\\.well-known/mail-profile/bob(@|%40)b\\.test`,
      ),
    );
    expect(remote.stdout).toMatch(/valid until: \d{4}-\d\d-\d\dT/);
    expect(local.stdout).toContain('carol@a.test: encrypted');
    expect(local.stdout).toContain('key: local-user');
    expect(wrong.stdout).toContain('wrong@c.test: refused (not sent)');
    expect(wrong.stdout).toMatch(/from: profile rejected: .*address/);
    expect(badsig.stdout).toMatch(/from: profile rejected: .*signature/);
  }, 120_000);
});

describe('bad input at submission', () => {
  it('AUTH before STARTTLS gets 538; MAIL before AUTH gets 530', async () => {
    const plain = Buffer.from(`\0${alice.address}\0${alice.password}`).toString('base64');
    const replies = await rawSmtp(a.ports.submission, [
      'EHLO client.example',
      `AUTH PLAIN ${plain}`,
      'MAIL FROM:<alice@a.test>',
      'QUIT',
    ]);
    expect(replies[0]).toMatch(/^220 /);
    expect(replies[2]).toMatch(/^538 /);
    expect(replies[3]).toMatch(/^530 /);
  });

  it('a wrong password gets 535 and sends nothing', async () => {
    const result = await swaks([
      '--auth',
      'PLAIN',
      '--auth-user',
      alice.address,
      '--auth-password',
      'not-the-password',
      '--from',
      'alice@a.test',
      '--to',
      'carol@a.test',
    ]);
    expect(result.code).not.toBe(0);
    expect(result.out).toMatch(/<~\* +535 5\.7\.8/);
  });

  it('a revoked device cannot log in, and its open session is closed', async () => {
    const phone = await addDevice(a, alice.address, alice.ownerDir, alice.owner, 'phone');
    const before = await swaks([...auth(phone), '--quit-after', 'AUTH']);
    expect(before.out).toMatch(/<~ +235 /);
    // A session logged in over implicit TLS, idle when the device is revoked.
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: a.ports.submissionTls,
      ca: readFileSync(a.certFile, 'utf8'),
      checkServerIdentity: () => undefined,
    });
    let seen = '';
    socket.on('data', (chunk: Buffer) => (seen += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await waitFor('the greeting', () => /^220 /m.test(seen), 60_000);
    socket.write('EHLO client.example\r\n');
    await waitFor('the EHLO reply', () => /^250 /m.test(seen), 60_000);
    socket.write(
      `AUTH PLAIN ${Buffer.from(`\0${phone.address}\0${phone.password}`).toString('base64')}\r\n`,
    );
    await waitFor('the AUTH reply', () => /^235 /m.test(seen), 60_000);
    const revoked = await alice.owner(['device', 'revoke', 'phone']);
    expect(revoked.code).toBe(0);
    await closed;
    expect(seen).toMatch(/^421 4\.7\.0 Device access revoked/m);
    await waitFor(
      'the revocation to reach submission',
      async () => /<~\* +535 /.test((await swaks([...auth(phone), '--quit-after', 'AUTH'])).out),
      60_000,
    );
  }, 180_000);

  it('another envelope sender, and a forged From, get 550 5.7.1; nothing is delivered', async () => {
    const count = fetchThroughProxy(a, carol).length;
    const envelope = await swaks([
      ...auth(alice),
      '--from',
      'carol@a.test',
      '--to',
      'carol@a.test',
    ]);
    expect(envelope.out).toMatch(/<~\* +550 5\.7\.1 You may only send as your own address/);
    const from = await swaks([
      ...auth(alice),
      '--from',
      'alice@a.test',
      '--to',
      'carol@a.test',
      '--header',
      'From: Carol <carol@a.test>',
    ]);
    expect(from.out).toMatch(/<~\* +550 5\.7\.1 From: may only name your own address/);
    expect(fetchThroughProxy(a, carol)).toHaveLength(count);
  }, 120_000);

  it('a profile with a bad signature or for another address is no key: refused, not sent', async () => {
    for (const rcpt of ['wrong@c.test', 'badsig@c.test', 'nobody@c.test']) {
      const result = await swaks([...auth(alice), '--from', 'alice@a.test', '--to', rcpt]);
      expect(result.out).toMatch(new RegExp(`<~\\* +550 5\\.7\\.1 No key for ${rcpt}; not sent`));
    }
  }, 120_000);
});
