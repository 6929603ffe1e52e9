/**
 * The SMIMEA key source (src/submission/smimea-source.ts) against a real validating
 * resolver (unbound, test/helpers/dnssec-resolver.ts) serving zones signed here:
 *
 * * d.test, signed, trust anchor given: dave's 3 0 0 record is a key (and the DNS client
 *   saw the AD bit); a 3 1 1 record (a hash) and a 2 0 0 record (a CA) are not, with why;
 * * e.test, unsigned: erin's record is answered but not validated → not used;
 * * f.test, signed, frank's record changed after signing (bogus) → SERVFAIL → not used;
 * * a name with no record, and a resolver that does not answer → no key, with why.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatingResolver } from '../../src/dns/index.js';
import { smimeaRecord } from '../../src/profiles/smimea.js';
import { smimeaSource } from '../../src/submission/smimea-source.js';
import { DnssecResolver } from '../helpers/dnssec-resolver.js';
import { freePort } from '../helpers/ports.js';
import { makeOpensslGroup, type OpensslGroup } from '../helpers/smtp-openssl-encryptor.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-smimea-source-');
let dns: DnssecResolver;
let dave: OpensslGroup;
let erin: OpensslGroup;
let frank: OpensslGroup;
let rita: Buffer;

/** An RSA-2048 self-signed certificate (DER), as many S/MIME clients have. */
function rsaCertificate(name: string): Buffer {
  const key = join(tmp.path, `${name}.key`);
  const cert = join(tmp.path, `${name}.crt`);
  execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    ['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`],
    { stdio: 'ignore' },
  );
  return execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
}

/** The zone-file line for `address` relative to nothing (absolute owner name). */
function line(address: string, cert: Uint8Array, options = {}): string {
  return smimeaRecord(address, cert, options).genericRecord;
}

beforeAll(async () => {
  dave = makeOpensslGroup(tmp.path, 'dave');
  erin = makeOpensslGroup(tmp.path, 'erin');
  frank = makeOpensslGroup(tmp.path, 'frank');
  rita = rsaCertificate('rita');
  const frankRecord = smimeaRecord('frank@f.test', frank.certDer);
  dns = await DnssecResolver.start([
    {
      name: 'd.test',
      signed: true,
      records: [
        line('dave@d.test', dave.certDer),
        line('hash@d.test', dave.certDer, { selector: 1, matchingType: 1 }),
        line('ca@d.test', dave.certDer, { usage: 2 }),
        line('rita@d.test', rita),
      ],
    },
    { name: 'e.test', signed: false, records: [line('erin@e.test', erin.certDer)] },
    {
      name: 'f.test',
      signed: true,
      records: [frankRecord.genericRecord],
      // One octet of the certificate changed after the zone was signed.
      afterSigning: (zone) => {
        const hex = frankRecord.data;
        const changed = hex.slice(0, -2) + (hex.endsWith('00') ? '01' : '00');
        expect(zone).toContain(hex);
        return zone.replace(hex, changed);
      },
    },
  ]);
}, 120_000);

afterAll(async () => {
  await dns?.stop();
  tmp.remove();
});

function source(resolver = dns.address) {
  return smimeaSource({
    resolver: validatingResolver({ resolver, timeoutMs: 2_000 }),
    cacheTtlMs: 60_000,
  });
}

describe('SMIMEA through a validating resolver', () => {
  it('uses a DNSSEC-validated 3 0 0 record: the certificate published', async () => {
    const resolver = validatingResolver({ resolver: dns.address, timeoutMs: 2_000 });
    const reply = await resolver.query(smimeaRecord('dave@d.test', dave.certDer).owner, 'SMIMEA');
    expect(reply.authenticated).toBe(true);
    const answer = await source().lookup('dave@d.test');
    expect(answer.kind).toBe('key');
    if (answer.kind !== 'key') return;
    expect(answer.source).toBe('smimea');
    expect(Buffer.from(answer.certificate).equals(Buffer.from(dave.certDer))).toBe(true);
    expect(answer.provenance).toContain('DNSSEC-validated SMIMEA 3 0 0');
    expect(answer.validUntil.getTime()).toBeGreaterThan(Date.now());
  });

  it('uses an RSA certificate too (sent by KeyTransRecipientInfo)', async () => {
    const answer = await source().lookup('rita@d.test');
    expect(answer.kind).toBe('key');
    if (answer.kind === 'key') expect(Buffer.from(answer.certificate).equals(rita)).toBe(true);
  });

  it('does not use a record from an unsigned zone', async () => {
    const resolver = validatingResolver({ resolver: dns.address, timeoutMs: 2_000 });
    const reply = await resolver.query(smimeaRecord('erin@e.test', erin.certDer).owner, 'SMIMEA');
    expect(reply.records).toHaveLength(1);
    expect(reply.authenticated).toBe(false);
    const answer = await source().lookup('erin@e.test');
    expect(answer).toMatchObject({
      kind: 'none',
      reason: 'SMIMEA record not DNSSEC-validated; not used',
    });
  });

  it('does not use a bogus record (changed after signing)', async () => {
    const answer = await source().lookup('frank@f.test');
    expect(answer.kind).toBe('none');
    if (answer.kind === 'none') expect(answer.reason).toMatch(/SERVFAIL/);
  });

  it('skips hashes and CA records, saying why', async () => {
    const hash = await source().lookup('hash@d.test');
    expect(hash.kind).toBe('none');
    if (hash.kind === 'none') expect(hash.reason).toMatch(/SMIMEA 3 1 1: only a whole certificate/);
    const ca = await source().lookup('ca@d.test');
    expect(ca.kind).toBe('none');
    if (ca.kind === 'none') expect(ca.reason).toMatch(/SMIMEA 2 0 0: names a CA/);
  });

  it('has no key for an address without a record, or when the resolver does not answer', async () => {
    expect(await source().lookup('nobody@d.test')).toMatchObject({
      kind: 'none',
      reason: 'no SMIMEA record',
    });
    const silent = await source(`127.0.0.1:${await freePort()}`).lookup('dave@d.test');
    expect(silent.kind).toBe('none');
    if (silent.kind === 'none') expect(silent.reason).toMatch(/^SMIMEA lookup failed/);
  });

  it('believes the system resolver only on loopback', async () => {
    expect(() =>
      validatingResolver({ timeoutMs: 1_000, resolvConf: 'nameserver 192.0.2.53\n' }),
    ).toThrow(/not on this host/);
    expect(
      validatingResolver({ timeoutMs: 1_000, resolvConf: '# x\nnameserver 127.0.0.53\n' }).server,
    ).toBe('127.0.0.53:53');
  });
});
