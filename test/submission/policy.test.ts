/**
 * What submission does by policy (docs/sending.md "What is sent", "The sender's policy"),
 * on one real `recrypt start` with `withoutKey: send` whose outbound queue reaches real SMTP
 * servers (test/helpers/outbound-remote.ts) over STARTTLS, one for c.test and one for
 * e.test, where nobody publishes a key. Each part has its own sender and its own remote
 * server, so neither sees the other's mail.
 *
 * The sender's own policy:
 *
 * * `recrypt owner policy --require encrypt` publishes a profile, signed by the owner key,
 *   with `require: encrypt`: fetched from /.well-known/mail-profile/ and verified;
 * * that user's mail to the keyless dave@e.test is refused at RCPT (550 5.7.1), the local
 *   recipient of the same message still gets it, nothing is queued, the remote server gets
 *   nothing and no file of the data directory holds the text; `recrypt lookup --from` says so;
 * * another user without the policy sends to dave as it is;
 * * `owner rotate --fast` and `profile publish` keep the policy; `--require none` lifts it.
 *
 * Without a key, and mail the client encrypted:
 *
 * * a recipient without a key gets the message as it is, over TLS, and the 250 says so;
 *   the sender's Sent copy is still encrypted to her group;
 * * over `maxMessageBytes`: 552 5.3.4; past the per-user rate limit: 450 4.7.1 at MAIL;
 * * a message the client already encrypted (`openssl cms -encrypt` to carol's published
 *   group certificate) passes through byte for byte — to carol's mailbox and to the
 *   remote server — and carol's device reads it through the proxy.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyProfile } from '../../src/profiles/index.js';
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
const SENDER_MARKER = 'SENDER-POLICY-MARKER-5c1a';
let a: RunningTestGateway;
/** The server for c.test, where alice's mail without a key goes. */
let remote: RemoteMx;
/** The server for e.test, where sam's (and carol's) mail to dave goes. */
let remoteE: RemoteMx;
/** Sends without a key and client-encrypted mail; never has a policy of her own. */
let alice: Device;
/** A recipient, and the sender without a policy of the sender's-policy part. */
let carol: Device;
/** The user whose own profile requires encryption. */
let sam: Device;

/** swaks as alice against A's submission; its transcript (the transaction must be accepted). */
const swaks = (args: string[]) => swaksAccepted({ port: a.ports.submission, user: alice }, args);
/** The same when the transaction may be refused: its transcript either way. */
const transcript = async (args: string[]) =>
  (await swaksRun({ port: a.ports.submission, user: alice }, args)).stdout;

/** swaks as `device` against A's submission (STARTTLS); its transcript, failed or not. */
async function swaksAs(device: Device, to: string, body: string): Promise<string> {
  const message = ['--from', device.address, '--to', to, '--body', body];
  return (await swaksRun({ port: a.ports.submission, user: device }, message)).stdout;
}

function storedBodies(user: string, folder = ''): string[] {
  const base = join(a.dataDir, 'mail', user, 'Maildir', folder);
  return ['new', 'cur'].flatMap((sub) =>
    readdirSync(join(base, sub)).map((name) => {
      const text = readFileSync(join(base, sub, name), 'latin1');
      return text.slice(text.indexOf('\r\n\r\n') + 4);
    }),
  );
}

/** Sam's published profile, fetched as anyone would and verified. */
function publishedProfile() {
  const jws = execFileSync('curl', [
    '-sf',
    '--cacert',
    a.certFile,
    `https://127.0.0.1:${a.ports.admin}/.well-known/mail-profile/sam@a.test`,
  ]).toString('utf8');
  return verifyProfile(jws, { expectedAddress: 'sam@a.test' });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const info = statSync(path, { throwIfNoEntry: false });
    if (info === undefined) return [];
    return info.isDirectory() ? filesUnder(path) : info.isFile() ? [path] : [];
  });
}

async function owner(device: Device, args: string[]): Promise<string> {
  const result = await device.owner(args);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  for (const name of ['swaks', 'openssl', 'python3', 'curl']) requireBinary(name);
  [remote, remoteE] = await Promise.all([RemoteMx.start(), RemoteMx.start()]);
  // Nothing listens there: c.test and e.test publish no profile, so dave has no key.
  const nowhere = `https://127.0.0.1:${await freePort()}`;
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'send',
      maxMessageBytes: 64 * 1024,
      rateLimit: { perMinute: 1, burst: 6 },
      discovery: { origins: { 'c.test': nowhere, 'e.test': nowhere }, timeout: '5s' },
    },
    outbound: {
      routes: { 'c.test': `127.0.0.1:${remote.port}`, 'e.test': `127.0.0.1:${remoteE.port}` },
    },
  }));
  [alice, carol, sam] = await Promise.all([
    enrolWithDevice(a, 'alice@a.test'),
    enrolWithDevice(a, 'carol@a.test'),
    enrolWithDevice(a, 'sam@a.test'),
  ]);
}, 600_000);

afterAll(async () => {
  await a?.process.stop(10_000);
  await remote?.close();
  await remoteE?.close();
  tmp.remove();
});

// First, while the outbound queue has never held anything: "nothing queued" is then exact.
describe("the sender's own policy", () => {
  it('owner policy --require encrypt publishes a signed profile that requires encryption', async () => {
    expect(publishedProfile().profile.connection[0]).toMatchObject({
      require: 'none',
      prefer: 'encrypt',
    });
    expect(await owner(sam, ['owner', 'policy', '--require', 'encrypt'])).toBe(
      'policy of sam@a.test: require encrypt, prefer encrypt (profile published)\n',
    );
    const { profile } = publishedProfile();
    expect(profile.connection[0]).toMatchObject({ require: 'encrypt', prefer: 'encrypt' });
    expect(await owner(sam, ['owner', 'policy'])).toBe(
      'policy of sam@a.test: require encrypt, prefer encrypt\n',
    );
  }, 120_000);

  it('refuses his keyless recipient at RCPT: nothing queued, nothing sent, no plaintext on disk', async () => {
    const out = await swaksAs(sam, 'dave@e.test,carol@a.test', `${SENDER_MARKER} refused`);
    expect(out).toMatch(/<~\* +550 5\.7\.1 No key for dave@e\.test; not sent/);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient \(/);
    const queue = await a.operator(['queue', 'list']);
    expect(queue.stdout).toContain('the outbound queue is empty');
    expect(remoteE.received).toHaveLength(0);
    const leaking = filesUnder(a.dataDir).filter((file) =>
      readFileSync(file).includes(SENDER_MARKER),
    );
    expect(leaking).toEqual([]);
    const lookup = await a.operator(['lookup', 'dave@e.test', '--from', 'sam@a.test']);
    expect(lookup.stdout).toContain('dave@e.test: refused (not sent)');
    expect(lookup.stdout).toContain("the sender's profile requires encryption");
  }, 120_000);

  it('another user without the policy sends to the same recipient as it is', async () => {
    const out = await swaksAs(carol, 'dave@e.test', `${SENDER_MARKER} carol`);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient; 1 sent without encryption/);
    const [mail] = await remoteE.waitFor(1, 120_000);
    expect(mail!.mailFrom).toBe('carol@a.test');
    expect(mail!.bytes.toString('utf8')).toContain(`${SENDER_MARKER} carol`);
  }, 180_000);

  it('a fast rotation and profile publish keep the policy', async () => {
    const before = publishedProfile().groupCertificate;
    expect(await owner(sam, ['owner', 'rotate', '--fast'])).toContain('rotated sam@a.test (fast)');
    const rotated = publishedProfile();
    expect(Buffer.from(rotated.groupCertificate).equals(Buffer.from(before))).toBe(false);
    expect(rotated.profile.connection[0]!.require).toBe('encrypt');
    await owner(sam, ['profile', 'publish']);
    expect(publishedProfile().profile.connection[0]!.require).toBe('encrypt');
    const out = await swaksAs(sam, 'dave@e.test', `${SENDER_MARKER} after rotation`);
    expect(out).toMatch(/<~\* +550 5\.7\.1 No key for dave@e\.test; not sent/);
  }, 120_000);

  it('owner policy --require none lifts it: his mail to dave is sent as it is', async () => {
    expect(await owner(sam, ['owner', 'policy', '--require', 'none'])).toContain(
      'require none, prefer encrypt (profile published)',
    );
    expect(publishedProfile().profile.connection[0]!.require).toBe('none');
    const out = await swaksAs(sam, 'dave@e.test', `${SENDER_MARKER} allowed`);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient; 1 sent without encryption/);
    const received = await remoteE.waitFor(2, 120_000);
    expect(received[1]!.mailFrom).toBe('sam@a.test');
    expect(received[1]!.bytes.toString('utf8')).toContain(`${SENDER_MARKER} allowed`);
  }, 180_000);
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
