/**
 * DANE (RFC 7672) on the outbound queue's DNS path (docs/outbound.md "MTA-STS and DANE"):
 * a real validating unbound (`outbound.resolver`, zones signed here), MX hosts that are
 * real SMTP servers on port 25 of their own loopback addresses, `outbound.dane.enabled`.
 *
 * * ee.test (signed): TLSA 3 1 1 of the MX's self-signed key → delivered over TLS,
 *   DKIM-signed (`outbound.dkim`) as on the ordinary path;
 * * bad.test (signed): TLSA 3 1 1 of another key → deferred (4.7.5), nothing sent;
 * * ta.test (signed): TLSA 2 0 1 of the CA that issued the MX's certificate for its
 *   name, the chain presented → delivered;
 * * insecure.test (unsigned): the same mismatching TLSA as bad.test, not validated, so
 *   not used → delivered as without DANE (opportunistic TLS).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnssecResolver, type TestZone } from '../helpers/dnssec-resolver.js';
import {
  loopbackPrefix,
  spkiSha256,
  startNamedMx,
  type NamedMx,
} from '../helpers/outbound-named-mx.js';
import {
  openTestQueue,
  testMessage,
  waitUntil,
  type TestQueue,
} from '../helpers/outbound-remote.js';
import { makeTestCa } from '../helpers/tls-pki.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-dane-');
const net = loopbackPrefix();
let dns: DnssecResolver;
let ee: NamedMx;
let impostor: NamedMx;
let ta: NamedMx;
let test: TestQueue;

beforeAll(async () => {
  const ca = makeTestCa(tmp.path);
  const eeCert = ca.selfSigned('mx-ee', ['mx.ee.test']);
  const otherCert = ca.selfSigned('mx-bad', ['mx.bad.test', 'mx.insecure.test']);
  const taLeaf = ca.issue('mx-ta', ['mx.ta.test']);
  ee = await startNamedMx(`${net}1`, eeCert);
  impostor = await startNamedMx(`${net}2`, otherCert);
  ta = await startNamedMx(`${net}3`, { ...taLeaf, cert: taLeaf.cert + ca.cert });
  const zone = (name: string, address: string, tlsa: string, signed: boolean): TestZone => ({
    name,
    signed,
    records: [`@ IN MX 10 mx.${name}.`, `mx IN A ${address}`, `_25._tcp.mx IN TLSA ${tlsa}`],
  });
  const wrong = `3 1 1 ${spkiSha256(eeCert.der)}`;
  dns = await DnssecResolver.start([
    zone('ee.test', ee.address, `3 1 1 ${spkiSha256(eeCert.der)}`, true),
    zone('bad.test', impostor.address, wrong, true),
    zone('ta.test', ta.address, `2 0 1 ${createHash('sha256').update(ca.der).digest('hex')}`, true),
    zone('insecure.test', impostor.address, wrong, false),
  ]);
  const dkimKey = join(tmp.path, 'dkim.pem');
  execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', dkimKey],
    {
      stdio: 'ignore',
    },
  );
  test = await openTestQueue(tmp.path, {
    resolver: dns.address,
    dane: { enabled: true },
    dkim: { 'home.test': { selector: 's1', privateKeyFile: dkimKey } },
    retryInitial: '1h',
    connectTimeout: '10s',
  });
  test.queue.start();
}, 120_000);

afterAll(async () => {
  await test?.queue.close();
  for (const server of [ee, impostor, ta]) await server?.close();
  await dns?.stop();
  tmp.remove();
});

async function send(to: string): Promise<void> {
  await test.queue.enqueue([
    {
      mailFrom: 'list-bounces@home.test',
      to,
      message: testMessage(to, 'DANE'),
      origin: { kind: 'test' },
    },
  ]);
}

const receivedBy = (mx: NamedMx, to: string) => mx.received.filter((mail) => mail.to.includes(to));

describe('DANE', () => {
  it('DANE-EE: a self-signed certificate whose key the validated TLSA record names is used', async () => {
    await send('bob@ee.test');
    await waitUntil(() => receivedBy(ee, 'bob@ee.test').length === 1, 'ee.test delivered', 60_000);
    const [mail] = receivedBy(ee, 'bob@ee.test');
    expect(mail!.secure).toBe(true);
    // Signed on the DANE path as on the ordinary one (outbound.dkim for the sender's domain).
    const unfolded = mail!.bytes.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
    const signature = /^DKIM-Signature: .*$/m.exec(unfolded)?.[0] ?? '';
    expect(signature).toContain('d=home.test;');
    expect(signature).toContain('s=s1;');
  }, 90_000);

  it('a certificate matching no validated TLSA record gets nothing; the attempt is deferred', async () => {
    await send('mallory@bad.test');
    const deferred = () =>
      test.logs.find(
        (line) => line.includes('outbound message deferred') && line.includes('mallory@bad.test'),
      );
    await waitUntil(() => deferred() !== undefined, 'bad.test deferred', 60_000);
    expect(deferred()).toContain('DANE: the certificate matches no TLSA record');
    expect(receivedBy(impostor, 'mallory@bad.test')).toEqual([]);
  }, 90_000);

  it('DANE-TA: a chain up to the CA the TLSA record names, for the MX name, is used', async () => {
    await send('tom@ta.test');
    await waitUntil(() => receivedBy(ta, 'tom@ta.test').length === 1, 'ta.test delivered', 60_000);
  }, 90_000);

  it('TLSA records of an unsigned zone are not used', async () => {
    await send('ian@insecure.test');
    await waitUntil(
      () => receivedBy(impostor, 'ian@insecure.test').length === 1,
      'insecure.test delivered',
      60_000,
    );
  }, 90_000);
});
