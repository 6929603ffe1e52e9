/**
 * The sender's own policy (docs/sending.md "The sender's policy"), on a real `recrypt
 * start` with `withoutKey: send` whose outbound queue reaches a real SMTP server for c.test
 * (test/helpers/outbound-remote.ts), where nobody publishes a key:
 *
 * * `recrypt owner policy --require encrypt` publishes a profile, signed by the owner key,
 *   with `require: encrypt`: fetched from /.well-known/mail-profile/ and verified;
 * * that user's mail to the keyless dave@c.test is refused at RCPT (550 5.7.1), the local
 *   recipient of the same message still gets it, nothing is queued, the remote server gets
 *   nothing and no file of the data directory holds the text; `recrypt lookup --from` says so;
 * * another user without the policy sends to dave as it is;
 * * `owner rotate --fast` and `profile publish` keep the policy; `--require none` lifts it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyProfile } from '../../src/profiles/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { swaks as submitSwaks } from '../helpers/submission-swaks.js';
import {
  enrolWithDevice,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-sender-policy-');
const MARKER = 'SENDER-POLICY-MARKER-5c1a';
let a: RunningTestGateway;
let remote: RemoteMx;
let alice: Device;
let carol: Device;

/** swaks as `device` against A's submission (STARTTLS); its transcript, failed or not. */
async function swaks(device: Device, to: string, body: string): Promise<string> {
  const message = ['--from', device.address, '--to', to, '--body', body];
  return (await submitSwaks({ port: a.ports.submission, user: device }, message)).stdout;
}

/** Alice's published profile, fetched as anyone would and verified. */
function publishedProfile() {
  const jws = execFileSync('curl', [
    '-sf',
    '--cacert',
    a.certFile,
    `https://127.0.0.1:${a.ports.admin}/.well-known/mail-profile/alice@a.test`,
  ]).toString('utf8');
  return verifyProfile(jws, { expectedAddress: 'alice@a.test' });
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
  for (const name of ['swaks', 'curl']) requireBinary(name);
  remote = await RemoteMx.start();
  const nowhere = await freePort();
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'send',
      // Nothing listens there: c.test publishes no profile, so dave has no key.
      discovery: { origins: { 'c.test': `https://127.0.0.1:${nowhere}` }, timeout: '5s' },
    },
    outbound: { routes: { 'c.test': `127.0.0.1:${remote.port}` } },
  }));
  [alice, carol] = await Promise.all([
    enrolWithDevice(a, 'alice@a.test'),
    enrolWithDevice(a, 'carol@a.test'),
  ]);
}, 600_000);

afterAll(async () => {
  await a?.process.stop(10_000);
  await remote?.close();
  tmp.remove();
});

describe("the sender's own policy", () => {
  it('owner policy --require encrypt publishes a signed profile that requires encryption', async () => {
    expect(publishedProfile().profile.connection[0]).toMatchObject({
      require: 'none',
      prefer: 'encrypt',
    });
    expect(await owner(alice, ['owner', 'policy', '--require', 'encrypt'])).toBe(
      'policy of alice@a.test: require encrypt, prefer encrypt (profile published)\n',
    );
    const { profile } = publishedProfile();
    expect(profile.connection[0]).toMatchObject({ require: 'encrypt', prefer: 'encrypt' });
    expect(await owner(alice, ['owner', 'policy'])).toBe(
      'policy of alice@a.test: require encrypt, prefer encrypt\n',
    );
  }, 120_000);

  it('refuses her keyless recipient at RCPT: nothing queued, nothing sent, no plaintext on disk', async () => {
    const out = await swaks(alice, 'dave@c.test,carol@a.test', `${MARKER} refused`);
    expect(out).toMatch(/<~\* +550 5\.7\.1 No key for dave@c\.test; not sent/);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient \(/);
    const queue = await a.operator(['queue', 'list']);
    expect(queue.stdout).toContain('the outbound queue is empty');
    expect(remote.received).toHaveLength(0);
    const leaking = filesUnder(a.dataDir).filter((file) => readFileSync(file).includes(MARKER));
    expect(leaking).toEqual([]);
    const lookup = await a.operator(['lookup', 'dave@c.test', '--from', 'alice@a.test']);
    expect(lookup.stdout).toContain('dave@c.test: refused (not sent)');
    expect(lookup.stdout).toContain("the sender's profile requires encryption");
  }, 120_000);

  it('another user without the policy sends to the same recipient as it is', async () => {
    const out = await swaks(carol, 'dave@c.test', `${MARKER} carol`);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient; 1 sent without encryption/);
    const [mail] = await remote.waitFor(1, 120_000);
    expect(mail!.mailFrom).toBe('carol@a.test');
    expect(mail!.bytes.toString('utf8')).toContain(`${MARKER} carol`);
  }, 180_000);

  it('a fast rotation and profile publish keep the policy', async () => {
    const before = publishedProfile().groupCertificate;
    expect(await owner(alice, ['owner', 'rotate', '--fast'])).toContain(
      'rotated alice@a.test (fast)',
    );
    const rotated = publishedProfile();
    expect(Buffer.from(rotated.groupCertificate).equals(Buffer.from(before))).toBe(false);
    expect(rotated.profile.connection[0]!.require).toBe('encrypt');
    await owner(alice, ['profile', 'publish']);
    expect(publishedProfile().profile.connection[0]!.require).toBe('encrypt');
    const out = await swaks(alice, 'dave@c.test', `${MARKER} after rotation`);
    expect(out).toMatch(/<~\* +550 5\.7\.1 No key for dave@c\.test; not sent/);
  }, 120_000);

  it('owner policy --require none lifts it: her mail to dave is sent as it is', async () => {
    expect(await owner(alice, ['owner', 'policy', '--require', 'none'])).toContain(
      'require none, prefer encrypt (profile published)',
    );
    expect(publishedProfile().profile.connection[0]!.require).toBe('none');
    const out = await swaks(alice, 'dave@c.test', `${MARKER} allowed`);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient; 1 sent without encryption/);
    const received = await remote.waitFor(2, 120_000);
    expect(received[1]!.mailFrom).toBe('alice@a.test');
    expect(received[1]!.bytes.toString('utf8')).toContain(`${MARKER} allowed`);
  }, 180_000);
});
