/**
 * The two other ways a message leaves submission (docs/sending.md "What is sent"), on a
 * real `recrypt start` with `withoutKey: send` whose outbound queue reaches a real SMTP
 * server for c.test (test/helpers/outbound-remote.ts) over STARTTLS:
 *
 * * a recipient without a key gets the message as it is, over TLS, and the 250 says so;
 *   the sender's Sent copy is still encrypted to her group;
 * * over `maxMessageBytes`: 552 5.3.4; past the per-user rate limit: 450 4.7.1 at MAIL;
 * * a message the client already encrypted (`openssl cms -encrypt` to carol's published
 *   group certificate) passes through byte for byte — to carol's mailbox and to the
 *   remote server — and carol's device reads it through the proxy.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { freePort } from '../helpers/ports.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { swaks as swaksRun, swaksAccepted } from '../helpers/submission-swaks.js';
import {
  decryptWith,
  enrolWithDevice,
  fetchThroughProxy,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-sending-policy-');
const MARKER = 'NO-KEY-MARKER-3b9e';
let a: RunningTestGateway;
let remote: RemoteMx;
let alice: Device;
let carol: Device;

/** swaks as alice against A's submission; its transcript (the transaction must be accepted). */
const swaks = (args: string[]) => swaksAccepted({ port: a.ports.submission, user: alice }, args);
/** The same when the transaction may be refused: its transcript either way. */
const transcript = async (args: string[]) =>
  (await swaksRun({ port: a.ports.submission, user: alice }, args)).stdout;

function storedBodies(user: string, folder = ''): string[] {
  const base = join(a.dataDir, 'mail', user, 'Maildir', folder);
  return ['new', 'cur'].flatMap((sub) =>
    readdirSync(join(base, sub)).map((name) => {
      const text = readFileSync(join(base, sub, name), 'latin1');
      return text.slice(text.indexOf('\r\n\r\n') + 4);
    }),
  );
}

beforeAll(async () => {
  for (const name of ['swaks', 'openssl', 'python3', 'curl']) requireBinary(name);
  remote = await RemoteMx.start();
  const nowhere = await freePort();
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'send',
      maxMessageBytes: 64 * 1024,
      rateLimit: { perMinute: 1, burst: 6 },
      // Nothing listens there: c.test publishes no profile.
      discovery: { origins: { 'c.test': `https://127.0.0.1:${nowhere}` }, timeout: '5s' },
    },
    outbound: { routes: { 'c.test': `127.0.0.1:${remote.port}` } },
  }));
  alice = await enrolWithDevice(a, 'alice@a.test');
  carol = await enrolWithDevice(a, 'carol@a.test');
}, 600_000);

afterAll(async () => {
  await a?.process.stop(10_000);
  await remote?.close();
  tmp.remove();
});

describe('submission without a key, and mail the client encrypted', () => {
  it('a recipient without a key gets the message as it is, over TLS; the Sent copy is encrypted', async () => {
    const out = await swaks([
      '--from',
      'alice@a.test',
      '--to',
      'dave@c.test',
      '--header',
      'Subject: no key',
      '--body',
      `${MARKER} plain`,
    ]);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient; 1 sent without encryption/);
    const [mail] = await remote.waitFor(1, 120_000);
    expect(mail!.to).toEqual(['dave@c.test']);
    expect(mail!.mailFrom).toBe('alice@a.test');
    expect(mail!.secure).toBe(true);
    expect(mail!.bytes.toString('utf8')).toContain(`${MARKER} plain`);
    const [sent] = fetchThroughProxy(a, alice, 'Sent');
    expect(sent!.toString('latin1')).not.toContain(MARKER);
    expect(decryptWith(alice, sent!)!.toString('utf8')).toContain(`${MARKER} plain`);
  }, 240_000);

  it('an S/MIME envelope made by the client passes through byte for byte', async () => {
    const groupCer = join(tmp.path, 'carol-group.cer');
    const cert = execFileSync('curl', [
      '-sf',
      '--cacert',
      a.certFile,
      `https://127.0.0.1:${a.ports.admin}/.well-known/mail-profile/carol@a.test/group.cer`,
    ]);
    writeFileSync(groupCer, cert);
    const inner = join(tmp.path, 'inner.eml');
    writeFileSync(
      inner,
      'From: alice@a.test\r\nTo: carol@a.test\r\nSubject: e2e\r\n\r\nend to end, the gateway never sees this\r\n',
    );
    const enveloped = execFileSync('openssl', [
      'cms',
      '-encrypt',
      '-aes256',
      '-in',
      inner,
      '-recip',
      groupCer,
      '-from',
      'alice@a.test',
      '-to',
      'carol@a.test, dave@c.test',
      '-subject',
      'e2e',
    ]).toString('latin1');
    const message = enveloped.replace(/\r?\n/g, '\r\n');
    const file = join(tmp.path, 'enveloped.eml');
    writeFileSync(file, message, 'latin1');
    const before = remote.received.length;
    const out = await swaks([
      '--from',
      'alice@a.test',
      '--to',
      'carol@a.test,dave@c.test',
      '--data',
      `@${file}`,
    ]);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 2 recipients/);
    // Byte for byte, up to the line ends swaks itself puts after the message.
    const trimmed = (text: string) => text.replace(/(\r\n)+$/, '');
    const body = trimmed(message.slice(message.indexOf('\r\n\r\n') + 4));
    expect(storedBodies('carol@a.test').map(trimmed)).toContain(body);
    const received = await remote.waitFor(before + 1, 120_000);
    expect(trimmed(received[before]!.bytes.toString('latin1'))).toBe(trimmed(message));
    const messages = fetchThroughProxy(a, carol);
    const read = decryptWith(carol, messages[messages.length - 1]!);
    expect(read!.toString('utf8')).toContain('end to end, the gateway never sees this');
  }, 240_000);
  it('a message over maxMessageBytes gets 552 5.3.4; past the rate limit MAIL gets 450 4.7.1', async () => {
    const big = await transcript([
      '--from',
      'alice@a.test',
      '--to',
      'carol@a.test',
      '--body',
      'y'.repeat(100 * 1024),
    ]);
    expect(big).toMatch(/<~\* +552 5\.3\.4/);
    let limited = '';
    for (let i = 0; i < 10 && limited === ''; i++) {
      const out = await transcript([
        '--from',
        'alice@a.test',
        '--to',
        'carol@a.test',
        '--quit-after',
        'MAIL',
      ]);
      if (/<~\* +450 /.test(out)) limited = out;
    }
    expect(limited).toMatch(/<~\* +450 4\.7\.1 Sending rate limit reached, try again in \d+ s/);
  }, 240_000);
});
