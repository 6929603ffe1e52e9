/**
 * Scale-out, end to end: two real `recrypt start` processes (A and B) on one redis-server
 * and one Dovecot (test/helpers/scale-out-world.ts). What one process does, the other
 * sees: an owner enrols and adds a device through A, mail arrives through B's MX and is
 * fetched and decrypted (openssl cms) through A's proxy; a revocation through B ends A's
 * open session and A refuses the next login; a moderated post held through B is listed and
 * approved through A, delivered once; a notice queued through A while the remote MX is
 * down is delivered exactly once by B after A is killed with SIGKILL; login failures
 * spread over A and B are throttled as one.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDeviceAdd, type AddedDeviceOutput, type EnrolledOwner } from '../helpers/cli-flow.js';
import { waitFor } from '../helpers/gateway-process.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import {
  decryptWith,
  deviceKeyFiles,
  enrolOwner,
  fetchInbox,
  openSessionWaitingForBye,
  startScaleOutWorld,
  tryLogin,
  type ScaleOutWorld,
} from '../helpers/scale-out-world.js';
import { swaks, swaksReplies } from '../helpers/smtp-senders.js';

const RITA = 'rita@example.org';
const LIST = 'mods@example.org';
const SAM = 'sam@example.org';
const original = readFileSync(new URL('../fixtures/cli/message.eml', import.meta.url));

let world: ScaleOutWorld;
let owner: EnrolledOwner;
let device: AddedDeviceOutput;
let redis: Redis;
/** Sam, enrolled with a device, for the list steps: made while the first steps run. */
let samReady: Promise<{ sam: EnrolledOwner; samDevice: AddedDeviceOutput }>;

function ok(result: { code: number | null; stdout: string; stderr: string }): string {
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

async function send(port: number, from: string, to: string, data: Buffer): Promise<string[]> {
  const { code, transcript } = await swaks(
    ['--server', `127.0.0.1:${port}`, '--from', from, '--to', to, '--helo', 'remote.test'],
    data,
  );
  expect(code, transcript).toBe(0);
  return swaksReplies(transcript);
}

/** `/metrics` of a process's operator listener, as curl gets it. */
function metric(port: number, name: string): number {
  const text = execFileSync(
    'curl',
    ['-s', '--cacert', world.certFile, `https://127.0.0.1:${port}/metrics`],
    { encoding: 'utf8' },
  );
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

/** Messages in a Dovecot user's Maildir (new and cur). */
function maildirCount(user: string): number {
  const base = join(world.dovecot.mailDir, user, 'Maildir');
  let count = 0;
  for (const sub of ['new', 'cur']) {
    try {
      count += readdirSync(join(base, sub)).length;
    } catch {
      // not made yet
    }
  }
  return count;
}

beforeAll(async () => {
  world = await startScaleOutWorld();
  redis = new Redis(world.redis.url);
  samReady = enrolOwner(world, SAM).then(async (sam) => ({
    sam,
    samDevice: parseDeviceAdd(ok(await sam.run(['device', 'add', 'phone'])), sam.dir),
  }));
  // Awaited by the list step; a failure is reported there, not as an unhandled rejection.
  samReady.catch(() => undefined);
}, 240_000);

afterAll(async () => {
  redis?.disconnect();
  await world?.close();
});

// Each step runs several CLI processes with scrypt-heavy steps: room for a loaded machine.
describe('two gateway processes on one Redis and one Dovecot', { timeout: 300_000 }, () => {
  it('enrols and adds a device through A; mail through B’s MX is read through A’s proxy', async () => {
    owner = await enrolOwner(world, RITA);
    device = parseDeviceAdd(ok(await owner.run(['device', 'add', 'laptop'])), owner.dir);
    const replies = await send(world.b.ports.smtp, 'sender@remote.test', RITA, original);
    expect(replies.at(-2)).toMatch(/^250 /);
    const messages = fetchInbox(world.a.ports.imap, world.certFile, RITA, device.devicePassword);
    expect(messages).toHaveLength(1);
    const files = deviceKeyFiles(device.p12File, device.p12Password, owner.dir);
    const plain = decryptWith(files, messages[0]!);
    // The whole original is inside the envelope (line ends as delivered).
    expect(plain.toString('utf8').replace(/\r\n/g, '\n')).toContain(
      original.toString('utf8').replace(/\r\n/g, '\n').trim().split('\n').at(-1)!,
    );
  });

  it('a revocation through B ends A’s open session and A refuses the next login', async () => {
    // The session on A and the owner's switch to B are independent: side by side.
    const [session, switched] = await Promise.all([
      openSessionWaitingForBye(world.a.ports.imap, world.certFile, RITA, device.devicePassword),
      owner.run(['owner', 'gateway', world.b.adminUrl, '--ca', 'gateway-cert.pem']),
    ]);
    ok(switched);
    const revoked = ok(await owner.run(['device', 'revoke', device.id]));
    expect(revoked).toContain('revoked');
    // Armed once B has answered the revocation: the seconds it prints are from then (0
    // when the BYE had already arrived).
    session.armed();
    const ended = await session.result;
    expect(ended).toMatch(/^BYE \d+\.\d+ \* BYE /m);
    // Printed, not asserted: how soon is a timing (no timing assertions in tests).
    console.log(`A's session ended after the revocation through B: ${ended.trim()}`);
    // Back to A (for the next steps) while imaplib tries the revoked device's login.
    const back = owner.run(['owner', 'gateway', world.a.adminUrl, '--ca', 'gateway-cert.pem']);
    expect(tryLogin(world.a.ports.imap, world.certFile, RITA, device.devicePassword)).toMatch(
      /^NO .*AUTHENTICATIONFAILED|^NO .*Authentication failed/,
    );
    ok(await back);
  });

  it('a moderated post held through B is listed and approved through A, delivered once', async () => {
    ok(await owner.run(['list', 'create', LIST, '--policy', 'moderated']));
    const post = Buffer.from(
      'From: poster@remote.test\r\nTo: mods@example.org\r\nSubject: held via B\r\n\r\nplease approve\r\n',
    );
    const replies = await send(world.b.ports.smtp, 'poster@remote.test', LIST, post);
    expect(replies.at(-2)).toMatch(/^250 /);
    const held = ok(await owner.run(['list', 'held', LIST]));
    expect(held).toContain(`1 post(s) held for ${LIST}:`);
    expect(held).toContain('Subject: held via B');
    const id = /\b([0-9a-f]{32})\b/.exec(held)![1]!;
    const archiveBefore = maildirCount(LIST);
    const approved = ok(await owner.run(['list', 'approve', LIST, id]));
    expect(approved).toContain(`post ${id} approved`);
    // A second approval and the list of held posts, side by side: neither changes anything.
    const [again, heldAfter] = await Promise.all([
      owner.run(['list', 'approve', LIST, id]),
      owner.run(['list', 'held', LIST]),
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('held post not found (HTTP 404)');
    expect(maildirCount(LIST)).toBe(archiveBefore + 1);
    expect(ok(heldAfter).trim()).toBe(`no posts held for ${LIST}`);
  });

  it('login failures spread over A and B are throttled as one', async () => {
    // freeFailures is 3: two wrong passwords through each process make four in all.
    for (const port of [world.a.ports.imap, world.b.ports.imap, world.a.ports.imap]) {
      expect(tryLogin(port, world.certFile, RITA, 'wrong password')).toMatch(/^NO /);
    }
    const delayed = () =>
      world.b
        .output()
        .split('\n')
        .filter((line) => line.includes('login delayed after failed attempts'));
    expect(delayed()).toEqual([]);
    expect(tryLogin(world.b.ports.imap, world.certFile, RITA, 'wrong again')).toMatch(/^NO /);
    // B saw one failure itself (free); the delay comes from the count A and B share.
    await waitFor('B to log the delay', () => delayed().length === 1);
    expect(JSON.parse(delayed()[0]!)).toMatchObject({ delayMs: expect.any(Number) });
    expect(JSON.parse(delayed()[0]!).delayMs).toBeGreaterThan(0);
  });

  it('a list rotation and a member removal through B reach A’s open archive session', async () => {
    const { sam, samDevice } = await samReady;
    const invite = ok(await owner.run(['list', 'invite', LIST, SAM]))
      .trim()
      .split('\n')
      .at(-1)!;
    const joinToken = ok(await sam.run(['list', 'accept', LIST, invite]))
      .trim()
      .split('\n')
      .at(-1)!;
    expect(ok(await owner.run(['list', 'admit', joinToken]))).toContain(`${SAM} joined ${LIST}`);
    // The owner's switch to B runs while the two sessions open on A (one after the other,
    // as a client opens them).
    const switching = owner.run(['owner', 'gateway', world.b.adminUrl, '--ca', 'gateway-cert.pem']);
    const reader = await openArchiveReader(world.a.ports.imap, `${LIST}*${SAM}`, samDevice);
    const archive = await openSessionWaitingForBye(
      world.a.ports.imap,
      world.certFile,
      `${LIST}*${SAM}`,
      samDevice.devicePassword,
    );
    const switched = await switching;
    ok(switched);
    try {
      // A rotation through B: a post made after it, to the new list key, reads in the
      // archive session A opened before it.
      ok(await owner.run(['list', 'policy', LIST, 'open']));
      ok(await owner.run(['list', 'rotate', LIST]));
      const before = maildirCount(LIST);
      const post = Buffer.from(
        `From: poster@remote.test\r\nTo: ${LIST}\r\nSubject: after the rotation\r\n\r\nnew key\r\n`,
      );
      expect((await send(world.b.ports.smtp, 'poster@remote.test', LIST, post)).at(-2)).toMatch(
        /^250 /,
      );
      await waitFor('the post in the archive', () => maildirCount(LIST) === before + 1);
      const newest = await reader.fetchNewest();
      const samFiles = deviceKeyFiles(samDevice.p12File, samDevice.p12Password, sam.dir);
      expect(decryptWith(samFiles, newest).toString('utf8')).toContain(
        'Subject: after the rotation',
      );
      ok(await owner.run(['list', 'policy', LIST, 'moderated']));
      ok(await owner.run(['list', 'remove', LIST, SAM]));
      archive.armed();
      expect(await archive.result).toMatch(/^BYE \d+\.\d+ \* BYE /m);
      // Sam's own mailbox still opens through A; the archive no longer does (the earlier
      // step's failures from this address delay these logins, they do not refuse them).
      expect(tryLogin(world.a.ports.imap, world.certFile, SAM, samDevice.devicePassword)).toMatch(
        /^OK/,
      );
      expect(
        tryLogin(world.a.ports.imap, world.certFile, `${LIST}*${SAM}`, samDevice.devicePassword),
      ).toMatch(/^NO /);
    } finally {
      ok(await owner.run(['owner', 'gateway', world.a.adminUrl, '--ca', 'gateway-cert.pem']));
    }
  });

  it('the public listener’s rate limit is one bucket for A and B', async () => {
    // 20 unauthenticated requests to each at once: 40 fit in two per-process buckets of
    // 30 (the default burst), not in one shared bucket.
    const statuses = await Promise.all(
      [world.a.ports.admin, world.b.ports.admin].flatMap((port) =>
        Array.from({ length: 20 }, () => publicStatus(port, '/no-such-page')),
      ),
    );
    expect(statuses.filter((s) => s !== 404 && s !== 429)).toEqual([]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 404).length).toBeLessThanOrEqual(30 + 5);
  });

  it('a notice queued through A, A killed before it is sent: B delivers it exactly once', async () => {
    const post = Buffer.from(
      'From: late@remote.test\r\nTo: mods@example.org\r\nSubject: to be rejected\r\n\r\nno\r\n',
    );
    await send(world.b.ports.smtp, 'late@remote.test', LIST, post);
    const held = ok(await owner.run(['list', 'held', LIST]));
    const id = /\b([0-9a-f]{32})\b/.exec(held)![1]!;
    // The rejection notice to late@remote.test is queued by A (the owner's gateway); the
    // remote MX is down, so A's first attempt fails and the job waits for a retry.
    const rejected = ok(await owner.run(['list', 'reject', LIST, id, '--reason', 'off topic']));
    expect(rejected).toContain('late@remote.test has been told');
    await waitFor('A to try and defer the notice', () =>
      world.a.output().includes('outbound message deferred'),
    );
    expect(await redis.zcard('recrypt:{q}:pending')).toBe(1);
    expect(metric(world.b.ports.operator, 'recrypt_outbound_queue_size')).toBe(1);
    const listed = ok(await world.operator(world.b, ['queue', 'list']));
    expect(listed).toContain('shared outbound queue (Redis, every gateway process): 1 job(s)');
    expect(listed).toMatch(/\tlate@remote\.test\tfrom <>\t\d+ attempt\(s\)\tnext .*ECONNREFUSED/);
    await world.a.kill9();
    const remote = await RemoteMx.start({ port: world.remotePort });
    try {
      await remote.waitFor(1, 90_000);
      await waitFor(
        'the shared queue to be empty',
        async () => (await redis.zcard('recrypt:{q}:pending')) === 0,
      );
      // B's next passes find nothing more to send.
      await waitFor(
        'B to look at the queue again',
        () => world.b.output().split('"outbound message delivered"').length === 2,
      );
      await new Promise((resolve) => setTimeout(resolve, 7000));
      expect(remote.to('late@remote.test')).toHaveLength(1);
      expect(remote.received).toHaveLength(1);
      expect(remote.received[0]!.bytes.toString('utf8')).toContain('off topic');
      expect(metric(world.b.ports.operator, 'recrypt_outbound_queue_size')).toBe(0);
    } finally {
      await remote.close();
    }
  });
});

/** The status of an unauthenticated GET on a public listener. */
function publicStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, ca: readFileSync(world.certFile), agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const PYTHON_READ_LATER = `
import imaplib, ssl, sys, base64
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=120)
m.login(sys.argv[3], sys.argv[4])
m.select('INBOX', readonly=True)
print('READY', flush=True)
sys.stdin.readline()
m.noop()
typ, data = m.search(None, 'ALL')
typ, parts = m.fetch(data[0].split()[-1], '(BODY.PEEK[])')
print('MESSAGE ' + base64.b64encode(parts[0][1]).decode(), flush=True)
m.logout()
`;

/** An archive session opened now that fetches its newest message when asked, later. */
async function openArchiveReader(
  port: number,
  user: string,
  device: AddedDeviceOutput,
): Promise<{ fetchNewest(): Promise<Buffer> }> {
  const child = spawn(
    'python3',
    ['-c', PYTHON_READ_LATER, String(port), world.certFile, user, device.devicePassword],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await waitFor('the archive session to be open', () => {
    if (child.exitCode !== null) throw new Error(`archive session ended: ${out}`);
    return out.includes('READY');
  });
  return {
    async fetchNewest() {
      child.stdin.write('go\n');
      await exited;
      const line = /^MESSAGE (\S+)$/m.exec(out);
      if (line === null) throw new Error(`no message: ${out}`);
      return Buffer.from(line[1]!, 'base64');
    },
  };
}
