/**
 * Harvested certificates and the refusal policy, end to end on a real `recrypt start`
 * (docs/sending.md "Harvested certificates", "RSA recipients", "Without a key"):
 *
 * * bob@c.test (an openssl-made RSA signer) and erin@c.test (EC P-256) send signed mail
 *   to alice@a.test through A's MX; A harvests both certificates (`recrypt keys list`
 *   shows them, `recrypt lookup` names the source and the key transport);
 * * alice then sends one message to both through submission: the remote MX receives
 *   one envelope that `openssl cms -decrypt` reads with bob's RSA key and with erin's EC
 *   key, and alice's device reads her Sent copy;
 * * dan@d.test publishes a verified profile that requires encryption but whose group
 *   certificate has expired: RCPT gets 550 5.7.1 "No key for dan@d.test; not sent" though
 *   `withoutKey` is `send`; the message still goes (encrypted) to bob, and neither the
 *   queue nor the remote MX ever holds the plaintext.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProfile, signProfile } from '../../src/profiles/index.js';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { makeSigner, signedMail, type Signer } from '../helpers/keydir-signers.js';
import { RemoteMx, waitUntil } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { startProfileServer, type ProfileServer } from '../helpers/profiles-server.js';
import { MapProfileSource } from '../helpers/profiles-source.js';
import { swaksAccepted } from '../helpers/submission-swaks.js';
import {
  decryptWith,
  enrolWithDevice,
  fetchThroughProxy,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-harvest-send-');
const MARKER = 'HARVESTED-KEY-MARKER-61c2';
let a: RunningTestGateway;
let remote: RemoteMx;
let profiles: ProfileServer;
let alice: Device;
let bob: Signer;
let erin: Signer;

/** swaks to a port without TLS or AUTH (A's MX); its transcript. */
const swaks = (port: number, args: string[]) => swaksAccepted({ port, tls: false }, args);

const submit = (args: string[]) =>
  swaksAccepted({ port: a.ports.submission, user: alice }, ['--from', alice.address, ...args]);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const info = statSync(path);
    return info.isDirectory() ? filesUnder(path) : info.isFile() ? [path] : [];
  });
}

/** `openssl cms -decrypt` with a signer's own key and certificate; null when it cannot. */
function decryptAs(signer: Signer, message: Uint8Array): string | null {
  try {
    return execFileSync(
      'openssl',
      ['cms', '-decrypt', '-recip', signer.certFile, '-inkey', signer.keyFile],
      { input: message, stdio: ['pipe', 'pipe', 'pipe'] },
    ).toString('latin1');
  } catch {
    return null;
  }
}

/** dan@d.test's profile: genuine, requires encryption, its group certificate expired. */
async function expiredRequiringProfile(source: MapProfileSource): Promise<void> {
  const past = new Date(Date.now() - 3 * 365 * 86_400_000);
  const ca = await issueOwnerCa({ now: past });
  const group = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(randomScalar()),
    address: 'dan@d.test',
    now: past,
    years: 1,
  });
  const profile = buildProfile({
    address: 'dan@d.test',
    name: 'Dan',
    ownerPublicKey: publicPoint(ca.secret),
    groupCertificate: group,
    require: 'encrypt',
    issued: new Date(),
  });
  source.profiles.set('dan@d.test', signProfile(profile, ca.secret));
}

beforeAll(async () => {
  for (const name of ['swaks', 'openssl', 'python3']) requireBinary(name);
  remote = await RemoteMx.start();
  const source = new MapProfileSource();
  await expiredRequiringProfile(source);
  profiles = await startProfileServer(source);
  const nowhere = await freePort();
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'send',
      discovery: {
        origins: { 'c.test': `https://127.0.0.1:${nowhere}`, 'd.test': profiles.origin },
        caFile: profiles.caFile,
        timeout: '5s',
      },
      // The test's signed mail comes from 127.0.0.1 without DKIM: no DMARC pass is possible
      // here (test/keydir/harvest.test.ts checks that the default refuses it).
      harvest: { requireDmarcPass: false },
    },
    outbound: {
      routes: { 'c.test': `127.0.0.1:${remote.port}`, 'd.test': `127.0.0.1:${remote.port}` },
    },
  }));
  alice = await enrolWithDevice(a, 'alice@a.test');
  bob = makeSigner(tmp.path, 'bob@c.test', { key: 'rsa' });
  erin = makeSigner(tmp.path, 'erin@c.test', { key: 'ec' });
}, 600_000);

afterAll(async () => {
  await a?.process.stop();
  await remote?.close();
  await profiles?.close();
  tmp.remove();
});

describe('certificates harvested from signed mail', () => {
  it('the MX harvests an RSA and an EC signer; keys list and lookup show them', async () => {
    for (const signer of [bob, erin]) {
      const file = join(tmp.path, `${signer.address}.eml`);
      writeFileSync(
        file,
        signedMail(tmp.path, signer, alice.address, `Signed by ${signer.address}\n`),
      );
      const out = await swaks(a.ports.smtp, [
        '--from',
        signer.address,
        '--to',
        alice.address,
        '--data',
        file,
      ]);
      expect(out).toMatch(/<- +250 /);
    }
    // The harvester logs each certificate once it is stored: watching the log costs
    // nothing, where each look with `keys list` is a process of its own.
    await waitUntil(
      () => (a.process.output().match(/"msg":"certificate harvested"/g) ?? []).length >= 2,
      'both certificates in the directory',
      60_000,
    );
    const [keys, lookup] = await Promise.all([
      a.operator(['keys', 'list', 'c.test']),
      a.operator(['lookup', 'bob@c.test']),
    ]);
    const listed = keys.stdout;
    expect(listed).toContain('2 certificates');
    expect(listed).toMatch(/^bob@c\.test {2}rsa rsa-pkcs1 {2}valid until /m);
    expect(listed).toMatch(/^erin@c\.test {2}ec-p256 {2}valid until /m);
    expect(lookup.stdout).toMatch(/bob@c\.test: encrypted/);
    expect(lookup.stdout).toMatch(/key: harvested/);
    expect(lookup.stdout).toMatch(/from: signed mail seen .*sha256 [0-9a-f]{64}/);
    expect(lookup.stdout).toMatch(/key transport: rsa-pkcs1/);
    expect(lookup.stdout).toMatch(/valid until: /);
  }, 180_000);

  it('alice sends to both: one envelope that bob reads with his RSA key and erin with her EC key', async () => {
    const before = remote.received.length;
    const out = await submit([
      '--to',
      'bob@c.test,erin@c.test',
      '--header',
      'Subject: to harvested keys',
      '--body',
      `${MARKER} body`,
    ]);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 2 recipients \(/);
    await remote.waitFor(before + 2);
    const copies = remote.received.slice(before);
    expect(copies.map((mail) => mail.to[0]).sort()).toEqual(['bob@c.test', 'erin@c.test']);
    // The same envelope for both, never the plaintext.
    expect(copies[0]!.bytes.toString('latin1')).toMatch(/application\/pkcs7-mime/);
    for (const mail of copies) expect(mail.bytes.toString('latin1')).not.toContain(MARKER);
    for (const mail of copies) {
      expect(decryptAs(bob, mail.bytes)).toContain(MARKER);
      expect(decryptAs(erin, mail.bytes)).toContain(MARKER);
    }
    // A third party's key reads nothing; alice's device reads her Sent copy.
    const stranger = makeSigner(tmp.path, 'bob@c.test', { key: 'rsa' });
    expect(decryptAs(stranger, copies[0]!.bytes)).toBeNull();
    const sent = fetchThroughProxy(a, alice, 'Sent');
    expect(
      sent.some((message) => decryptWith(alice, message)?.toString('latin1').includes(MARKER)),
    ).toBe(true);
  }, 180_000);
});

describe('refusal when encryption is required and no key exists', () => {
  it('a verified profile that requires encryption, its key expired: 550 5.7.1 though withoutKey is send', async () => {
    const lookup = await a.operator(['lookup', 'dan@d.test']);
    expect(lookup.stdout).toMatch(/dan@d\.test: refused \(not sent\)/);
    expect(lookup.stdout).toMatch(/certificate expired/);
    const before = remote.received.length;
    const marker = `${MARKER}-dan`;
    const out = await submit([
      '--to',
      'dan@d.test,bob@c.test',
      '--header',
      'Subject: to dan',
      '--body',
      `${marker} body`,
    ]);
    expect(out).toMatch(/<~\* +550 5\.7\.1 No key for dan@d\.test; not sent/);
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient \(/);
    await remote.waitFor(before + 1);
    // dan was refused at RCPT: no job for him was ever queued.
    const queue = await a.operator(['queue', 'list']);
    expect(queue.code).toBe(0);
    expect(queue.stdout).not.toContain('dan@d.test');
    const copies = remote.received.slice(before);
    expect(copies.map((mail) => mail.to[0])).toEqual(['bob@c.test']);
    expect(copies[0]!.bytes.toString('latin1')).not.toContain(marker);
    expect(decryptAs(bob, copies[0]!.bytes)).toContain(marker);
    for (const file of filesUnder(a.dataDir)) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch {
        continue; // a queue file removed while we walked
      }
      expect(bytes.includes(marker), file).toBe(false);
    }
  }, 180_000);

  it('a harvested certificate that does not name the From address is not used: the sender policy decides', async () => {
    const mallory = makeSigner(tmp.path, 'mallory@c.test', { key: 'rsa' });
    const file = join(tmp.path, 'forged.eml');
    writeFileSync(
      file,
      signedMail(tmp.path, mallory, alice.address, 'I am carol\n', { from: 'carol@c.test' }),
    );
    expect(
      await swaks(a.ports.smtp, ['--from', 'carol@c.test', '--to', alice.address, '--data', file]),
    ).toMatch(/<- +250 /);
    await waitUntil(
      () =>
        /does not name the From address","msg":"signed mail: nothing harvested/.test(
          a.process.output(),
        ),
      'the harvester to look at the forged mail',
      60_000,
    );
    const lookup = await a.operator(['lookup', 'carol@c.test']);
    expect(lookup.stdout).toMatch(/carol@c\.test: sent WITHOUT encryption/);
    expect(lookup.stdout).toMatch(/no certificate seen on signed mail/);
  }, 120_000);
});
