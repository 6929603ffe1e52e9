/**
 * SMIMEA as a key source of a real `recrypt start` (docs/sending.md "SMIMEA"): gateway A
 * with `submission.smimea` pointed at a real validating resolver (unbound, zones signed
 * here: test/helpers/dnssec-resolver.ts), `withoutKey: refuse`, and d.test, e.test and
 * f.test reached through `outbound.routes` at a real SMTP server. None of them publishes
 * a profile.
 *
 * * dave@d.test has a 3 0 0 SMIMEA record in a signed zone: `recrypt lookup` says
 *   smimea, mail to him is encrypted to his certificate and `openssl cms -decrypt` with
 *   his key reads it; the queue and the remote never see the marker in clear.
 * * erin@e.test (unsigned zone) and frank@f.test (record changed after signing: bogus)
 *   have records too, but no key comes of them: lookup says why, RCPT is refused.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { smimeaRecord } from '../../src/profiles/smimea.js';
import { requireBinary } from '../helpers/binaries.js';
import { DnssecResolver } from '../helpers/dnssec-resolver.js';
import { RemoteMx, waitUntil } from '../helpers/outbound-remote.js';
import { freePort } from '../helpers/ports.js';
import { swaks as submitSwaks } from '../helpers/submission-swaks.js';
import {
  makeOpensslGroup,
  opensslDecrypt,
  type OpensslGroup,
} from '../helpers/smtp-openssl-encryptor.js';
import {
  enrolWithDevice,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-smimea-sending-');
const MARKER = 'SMIMEA-MARKER-71c4';
let dns: DnssecResolver;
let remote: RemoteMx;
let a: RunningTestGateway;
let alice: Device;
let dave: OpensslGroup;
let rita: OpensslGroup;

/** An RSA-2048 key and self-signed certificate, as many S/MIME clients have. */
function rsaIdentity(name: string): OpensslGroup {
  const keyPath = join(tmp.path, `${name}.key`);
  const certPath = join(tmp.path, `${name}.crt`);
  const quiet = { stdio: 'ignore' } as const;
  execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyPath],
    quiet,
  );
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      '-x509',
      '-key',
      keyPath,
      '-out',
      certPath,
      '-days',
      '30',
      '-subj',
      `/CN=${name}`,
    ],
    quiet,
  );
  const certDer = new Uint8Array(
    execFileSync('openssl', ['x509', '-in', certPath, '-outform', 'DER']),
  );
  return { name, certDer, certPath, keyPath };
}

/** swaks as alice against A's submission; its exit code and transcript. */
const swaks = (args: string[]) => submitSwaks({ port: a.ports.submission, user: alice }, args);

beforeAll(async () => {
  for (const name of ['swaks', 'openssl', 'python3']) requireBinary(name);
  dave = makeOpensslGroup(tmp.path, 'dave');
  rita = rsaIdentity('rita');
  const erin = makeOpensslGroup(tmp.path, 'erin');
  const frank = smimeaRecord('frank@f.test', makeOpensslGroup(tmp.path, 'frank').certDer);
  dns = await DnssecResolver.start([
    {
      name: 'd.test',
      signed: true,
      records: [
        smimeaRecord('dave@d.test', dave.certDer).genericRecord,
        smimeaRecord('rita@d.test', rita.certDer).genericRecord,
      ],
    },
    {
      name: 'e.test',
      signed: false,
      records: [smimeaRecord('erin@e.test', erin.certDer).genericRecord],
    },
    {
      name: 'f.test',
      signed: true,
      records: [frank.genericRecord],
      afterSigning: (zone) =>
        zone.replace(
          frank.data,
          frank.data.slice(0, -2) + (frank.data.endsWith('00') ? '01' : '00'),
        ),
    },
  ]);
  remote = await RemoteMx.start();
  const nowhere = `https://127.0.0.1:${await freePort()}`;
  const mx = `127.0.0.1:${remote.port}`;
  a = await makeGateway(tmp.path, 'a', (ports) => ({
    submission: {
      host: '127.0.0.1',
      port: ports.submission,
      tlsPort: ports.submissionTls,
      withoutKey: 'refuse',
      discovery: {
        origins: { 'd.test': nowhere, 'e.test': nowhere, 'f.test': nowhere },
        timeout: '5s',
      },
      smimea: { enabled: true, resolver: dns.address },
    },
    outbound: { routes: { 'd.test': mx, 'e.test': mx, 'f.test': mx } },
  }));
  alice = await enrolWithDevice(a, 'alice@a.test');
}, 600_000);

afterAll(async () => {
  await a?.process.stop(10_000);
  await remote?.close();
  await dns?.stop();
  tmp.remove();
});

describe('SMIMEA keys in submission', () => {
  it('recrypt lookup names the validated SMIMEA record, and only that one', async () => {
    // Three read-only lookups: one at a time they would only wait on each other.
    const [found, unsigned, bogus] = await Promise.all([
      a.operator(['lookup', 'dave@d.test']),
      a.operator(['lookup', 'erin@e.test']),
      a.operator(['lookup', 'frank@f.test']),
    ]);
    expect(found.code).toBe(0);
    expect(found.stdout).toContain('dave@d.test: encrypted');
    expect(found.stdout).toContain('key: smimea');
    expect(found.stdout).toMatch(
      /from: DNSSEC-validated SMIMEA 3 0 0 at [0-9a-f]{56}\._smimecert\.d\.test\./,
    );
    expect(unsigned.stdout).toContain('erin@e.test: refused');
    expect(unsigned.stdout).toContain('SMIMEA record not DNSSEC-validated; not used');
    expect(bogus.stdout).toContain('frank@f.test: refused');
    expect(bogus.stdout).toMatch(/SMIMEA lookup failed: SERVFAIL/);
  }, 120_000);

  it('mail to dave is encrypted to his SMIMEA certificate; openssl reads it with his key', async () => {
    const sent = await swaks([
      '--from',
      'alice@a.test',
      '--to',
      'dave@d.test',
      '--header',
      'Subject: via SMIMEA',
      '--body',
      `${MARKER} for dave`,
    ]);
    expect(sent.stdout).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient/);
    expect(sent.stdout).not.toMatch(/without encryption/);
    const [mail] = await remote.waitFor(1, 120_000);
    expect(mail!.to).toEqual(['dave@d.test']);
    expect(mail!.bytes.toString('latin1')).not.toContain(MARKER);
    expect(mail!.bytes.toString('latin1')).toMatch(
      /application\/pkcs7-mime; smime-type=enveloped-data/,
    );
    const plain = await opensslDecrypt(mail!.bytes, dave);
    expect(plain.toString('utf8')).toContain(`${MARKER} for dave`);
  }, 240_000);

  it('an RSA certificate from SMIMEA gets a KeyTransRecipientInfo openssl reads', async () => {
    const sent = await swaks([
      '--from',
      'alice@a.test',
      '--to',
      'rita@d.test',
      '--body',
      `${MARKER} for rita`,
    ]);
    expect(sent.stdout).toMatch(/<~ +250 2\.6\.0 OK: sent to 1 recipient/);
    await waitUntil(() => remote.to('rita@d.test').length === 1, 'mail for rita', 120_000);
    const [mail] = remote.to('rita@d.test');
    expect(mail!.bytes.toString('latin1')).not.toContain(MARKER);
    const plain = await opensslDecrypt(mail!.bytes, rita);
    expect(plain.toString('utf8')).toContain(`${MARKER} for rita`);
  }, 240_000);

  it('an unsigned or bogus record is no key: RCPT is refused (withoutKey: refuse)', async () => {
    for (const rcpt of ['erin@e.test', 'frank@f.test']) {
      const refused = await swaks(['--from', 'alice@a.test', '--to', rcpt, '--body', MARKER]);
      expect(refused.code).not.toBe(0);
      expect(refused.stdout).toMatch(new RegExp(`<~?\\*+ +550 5\\.7\\.1 No key for ${rcpt}`));
    }
    expect(remote.to('erin@e.test')).toEqual([]);
    expect(remote.to('frank@f.test')).toEqual([]);
  }, 240_000);
});
