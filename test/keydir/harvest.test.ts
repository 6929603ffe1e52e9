/**
 * Harvesting on real signed mail (docs/sending.md "Harvested certificates"): signers and
 * certificates made by `openssl req`, mail signed by `openssl cms -sign`, checked by the
 * harvester into a real SQLite key directory. What is harvested (RSA detached, EC
 * opaque), and every reason a signed message gives nothing: the certificate lacks the
 * From address, has expired, has the wrong key usage; the signature does not verify;
 * DMARC did not pass; a local domain; past the size caps; a garbled signature.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createHarvester,
  dmarcPassed,
  SqliteKeyDirectory,
  type HarvestResult,
  type HarvestSettings,
  type KeyDirectory,
} from '../../src/keydir/index.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  makeExpiredSigner,
  makeSigner,
  signedMail,
  type Signer,
} from '../helpers/keydir-signers.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-harvest-');
const PASS =
  'Authentication-Results: mx.a.test;\r\n spf=pass; dkim=pass; dmarc=pass header.from=c.test\r\n';
const NONE =
  'Authentication-Results: mx.a.test;\r\n spf=none; dkim=none; dmarc=none header.from=c.test\r\n';
const settings: HarvestSettings = {
  maxPerAddress: 2,
  maxMessageBytes: 256 * 1024,
  maxSignatureBytes: 16 * 1024,
  timeoutMs: 10_000,
  maxPending: 4,
  requireDmarcPass: true,
};
let directory: KeyDirectory;
let rsa: Signer;
let ec: Signer;

function harvester(overrides: Partial<HarvestSettings> = {}, results: HarvestResult[] = []) {
  return createHarvester({
    directory,
    settings: { ...settings, ...overrides },
    onResult: (result) => results.push(result),
    isLocalDomain: (domain) => domain === 'a.test',
  });
}

beforeAll(() => {
  requireBinary('openssl');
  directory = new SqliteKeyDirectory(join(tmp.path, 'keys.sqlite'));
  rsa = makeSigner(tmp.path, 'bob@c.test', { key: 'rsa' });
  ec = makeSigner(tmp.path, 'erin@c.test', { key: 'ec' });
});

afterAll(async () => {
  await directory.close();
  tmp.remove();
});

describe('harvesting signed mail', () => {
  it('an RSA signer (multipart/signed) is harvested when DMARC passed for the From domain', async () => {
    const mail = signedMail(tmp.path, rsa, 'alice@a.test', 'Hello from Bob\n');
    const outcome = await harvester().harvest(mail, PASS);
    expect(outcome).toMatchObject({ harvested: true, address: 'bob@c.test' });
    const [kept] = await directory.forAddress('bob@c.test');
    expect(kept?.keyType).toBe('rsa');
    expect(Buffer.from(kept!.der).equals(Buffer.from(rsa.der))).toBe(true);
    // openssl announces no RSAES-OAEP: the recipient gets PKCS#1 v1.5 (undefined here).
    expect(kept?.rsaKeyTransport).toBeUndefined();
    expect((await directory.list('c.test')).map((r) => r.address)).toContain('bob@c.test');
  });

  it('an EC P-256 signer (opaque signed-data) is harvested', async () => {
    const mail = signedMail(tmp.path, ec, 'alice@a.test', 'Hello from Erin\n', { opaque: true });
    expect(mail.toString('latin1')).toMatch(/smime-type=signed-data/);
    const outcome = await harvester().harvest(mail, PASS);
    expect(outcome).toMatchObject({ harvested: true, address: 'erin@c.test' });
    expect((await directory.forAddress('erin@c.test'))[0]?.keyType).toBe('ec-p256');
  });

  it('an address given only as emailAddress in the subject counts too', async () => {
    const legacy = makeSigner(tmp.path, 'legacy@c.test', {
      key: 'rsa',
      subject: '/CN=Legacy/emailAddress=Legacy@c.test',
      subjectAltName: 'DNS:legacy.c.test',
    });
    const outcome = await harvester().harvest(
      signedMail(tmp.path, legacy, 'alice@a.test', 'hi\n'),
      PASS,
    );
    expect(outcome).toMatchObject({ harvested: true, address: 'legacy@c.test' });
  });

  it('offer() returns at once and harvests afterwards', async () => {
    const before = (await directory.forAddress('bob@c.test'))[0]!.seenAt.getTime();
    const mail = signedMail(tmp.path, rsa, 'alice@a.test', 'again\n');
    const h = harvester();
    h.offer(mail, PASS);
    mail.fill(0); // the MX reuses its buffer: the harvester must have copied what it needs
    await h.idle();
    const kept = await directory.forAddress('bob@c.test');
    expect(kept).toHaveLength(1);
    expect(kept[0]!.seenAt.getTime()).toBeGreaterThan(before);
  });
});

it('past maxPending waiting messages, offer() skips (the MX is never held up)', async () => {
  const first = makeSigner(tmp.path, 'busy1@c.test', { key: 'ec' });
  const second = makeSigner(tmp.path, 'busy2@c.test', { key: 'ec' });
  const results: HarvestResult[] = [];
  const h = harvester({ maxPending: 1 }, results);
  h.offer(signedMail(tmp.path, first, 'alice@a.test', 'one\n'), PASS);
  h.offer(signedMail(tmp.path, second, 'alice@a.test', 'two\n'), PASS);
  await h.idle();
  h.offer(Buffer.from('From: x@c.test\r\n\r\nplain\r\n'), PASS);
  await h.idle();
  expect(results).toEqual(['skipped_busy', 'harvested', 'unsigned']);
  expect(await directory.forAddress('busy1@c.test')).toHaveLength(1);
  expect(await directory.forAddress('busy2@c.test')).toEqual([]);
});

describe('signed mail that gives nothing', () => {
  const notHarvested = async (mail: Buffer, reason: RegExp, results = PASS) => {
    const outcome = await harvester().harvest(mail, results);
    expect(outcome.harvested).toBe(false);
    if (!outcome.harvested) expect(outcome.reason).toMatch(reason);
  };

  it('a certificate without the From address', async () => {
    const other = makeSigner(tmp.path, 'mallory@c.test', {
      key: 'rsa',
      subjectAltName: 'email:mallory@c.test',
    });
    // Mallory signs a message From: carol@c.test with her own certificate.
    const mail = signedMail(tmp.path, other, 'alice@a.test', 'hi\n', { from: 'carol@c.test' });
    await notHarvested(mail, /does not name the From address/);
    expect(await directory.forAddress('carol@c.test')).toEqual([]);
  });

  it('an expired certificate', async () => {
    const expired = await makeExpiredSigner(tmp.path, 'old@c.test');
    await notHarvested(signedMail(tmp.path, expired, 'alice@a.test', 'hi\n'), /expired/);
    expect(await directory.forAddress('old@c.test')).toEqual([]);
  });

  it('a key usage that does not allow encryption (RSA without keyEncipherment, EC without keyAgreement)', async () => {
    const signOnly = makeSigner(tmp.path, 'sign@c.test', {
      key: 'rsa',
      keyUsage: 'digitalSignature',
    });
    await notHarvested(signedMail(tmp.path, signOnly, 'alice@a.test', 'hi\n'), /keyEncipherment/);
    const ecSignOnly = makeSigner(tmp.path, 'sign2@c.test', {
      key: 'ec',
      keyUsage: 'digitalSignature',
    });
    await notHarvested(signedMail(tmp.path, ecSignOnly, 'alice@a.test', 'hi\n'), /keyAgreement/);
    expect(await directory.forAddress('sign@c.test')).toEqual([]);
    expect(await directory.forAddress('sign2@c.test')).toEqual([]);
  });

  it('a signature that does not verify (the signed text changed on the way)', async () => {
    const tamperer = makeSigner(tmp.path, 'tamper@c.test', { key: 'rsa' });
    const mail = signedMail(tmp.path, tamperer, 'alice@a.test', 'Pay 10 EUR\n');
    const changed = Buffer.from(
      mail.toString('latin1').replace('Pay 10 EUR', 'Pay 99 EUR'),
      'latin1',
    );
    await notHarvested(changed, /does not verify/);
    expect(await directory.forAddress('tamper@c.test')).toEqual([]);
  });

  it('DMARC not passed for the From domain (unless requireDmarcPass is off)', async () => {
    const signer = makeSigner(tmp.path, 'dmarc@c.test', { key: 'ec' });
    const mail = signedMail(tmp.path, signer, 'alice@a.test', 'hi\n');
    await notHarvested(mail, /DMARC/, NONE);
    await notHarvested(mail, /DMARC/, PASS.replace('header.from=c.test', 'header.from=evil.test'));
    expect(await directory.forAddress('dmarc@c.test')).toEqual([]);
    expect(await harvester({ requireDmarcPass: false }).harvest(mail, NONE)).toMatchObject({
      harvested: true,
    });
  });

  it('a sender in a domain served here', async () => {
    const local = makeSigner(tmp.path, 'carol@a.test', { key: 'rsa' });
    await notHarvested(signedMail(tmp.path, local, 'alice@a.test', 'hi\n'), /local/);
  });

  it('past the size caps, a garbled signature, an unsigned message', async () => {
    const big = makeSigner(tmp.path, 'big@c.test', { key: 'rsa' });
    const large = signedMail(tmp.path, big, 'alice@a.test', `${'x'.repeat(70)}\n`.repeat(4000));
    await notHarvested(large, /no S\/MIME signature/);
    const mail = signedMail(tmp.path, big, 'alice@a.test', 'hi\n').toString('latin1');
    const garbled = mail.replace(
      /(smime\.p7s"\r?\n\r?\n)[A-Za-z0-9+/]{20}/,
      '$1AAAAAAAAAAAAAAAAAAAA',
    );
    expect(garbled).not.toBe(mail);
    await notHarvested(
      Buffer.from(garbled, 'latin1'),
      /malformed|not CMS|does not verify|no certificate/,
    );
    // A signature of 8,000 nested indefinite-length SEQUENCEs: refused, no crash.
    const nested = Buffer.alloc(16_000);
    for (let i = 0; i < nested.length; i += 2) nested.set([0x30, 0x80], i);
    const deep = mail.replace(
      /(smime\.p7s"\r?\n\r?\n)[A-Za-z0-9+/=\r\n]+?(\r?\n\r?\n-)/,
      `$1${nested.toString('base64').replace(/.{64}/g, '$&\r\n')}$2`,
    );
    expect(deep).not.toBe(mail);
    await notHarvested(Buffer.from(deep, 'latin1'), /malformed|not CMS/);
    await notHarvested(
      Buffer.from('From: big@c.test\r\nSubject: plain\r\n\r\nhello\r\n'),
      /no S\/MIME signature/,
    );
    expect(await directory.forAddress('big@c.test')).toEqual([]);
  });
});

it('dmarcPassed reads only a pass for that domain', () => {
  expect(dmarcPassed(PASS, 'c.test')).toBe(true);
  expect(dmarcPassed(PASS, 'd.test')).toBe(false);
  expect(dmarcPassed(NONE, 'c.test')).toBe(false);
  expect(dmarcPassed('Authentication-Results: x; dmarc=fail header.from=c.test', 'c.test')).toBe(
    false,
  );
});
