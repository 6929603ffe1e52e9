/**
 * MX hosts reached over IPv6 through `outbound.resolver` (docs/outbound.md "MTA-STS and
 * DANE"): a real validating unbound serving the zones, real SMTP servers on port 25, one
 * of them on `::1` (this file alone takes [::1]:25; IPv4 ones on their own 127.x address).
 *
 * * v6.test (signed): the MX host has only AAAA ::1 and a TLSA 3 1 1 of its key →
 *   delivered over IPv6 with DANE, SNI the MX name;
 * * v6bad.test (signed): the same host, a TLSA record of another key → deferred (4.7.5):
 *   DANE held for an IPv6-only host;
 * * pair.test: A → a server answering 451, AAAA → ::1 → the IPv4 address is tried first,
 *   then the IPv6 one takes the message (RFC 5321 §5.1: addresses in turn);
 * * masked.test: A → the 451 server, AAAA → an IPv4-mapped address nothing listens on →
 *   deferred with the 451, not the refused connection after it;
 * * plain.test, on a queue with MTA-STS and DANE off: AAAA-only → still looked up at
 *   `outbound.resolver` and delivered.
 */
import { mkdirSync } from 'node:fs';
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

const tmp = tempDir('recrypt-ipv6-');
const net = loopbackPrefix();
/** An address on loopback where nothing listens: connections are refused at once. */
const nobody = `${net}250`;
let dns: DnssecResolver;
let v6: NamedMx;
let busy: NamedMx;
let withDane: TestQueue;
let plainOnly: TestQueue;

beforeAll(async () => {
  const ca = makeTestCa(tmp.path);
  const v6Cert = ca.selfSigned('mx-v6', ['mx.v6.test']);
  const otherCert = ca.selfSigned('mx-other', ['mx.other.test']);
  v6 = await startNamedMx('::1', v6Cert);
  busy = await startNamedMx(`${net}5`, otherCert, [451, '4.3.0 busy here, try later']);
  const zone = (name: string, signed: boolean, ...records: string[]): TestZone => ({
    name,
    signed,
    records: [`@ IN MX 10 mx.${name}.`, ...records],
  });
  dns = await DnssecResolver.start([
    zone('v6.test', true, 'mx IN AAAA ::1', `_25._tcp.mx IN TLSA 3 1 1 ${spkiSha256(v6Cert.der)}`),
    zone(
      'v6bad.test',
      true,
      'mx IN AAAA ::1',
      `_25._tcp.mx IN TLSA 3 1 1 ${spkiSha256(otherCert.der)}`,
    ),
    zone('pair.test', false, `mx IN A ${busy.address}`, 'mx IN AAAA ::1'),
    zone('masked.test', false, `mx IN A ${busy.address}`, `mx IN AAAA ::ffff:${nobody}`),
    zone('plain.test', false, 'mx IN AAAA ::1'),
  ]);
  const queueDir = (name: string) => {
    const dir = join(tmp.path, name);
    mkdirSync(dir);
    return dir;
  };
  const common = { resolver: dns.address, retryInitial: '1h', connectTimeout: '10s' };
  withDane = await openTestQueue(queueDir('dane'), { ...common, dane: { enabled: true } });
  plainOnly = await openTestQueue(queueDir('plain'), { ...common, mtaSts: { enabled: false } });
  withDane.queue.start();
  plainOnly.queue.start();
}, 120_000);

afterAll(async () => {
  await withDane?.queue.close();
  await plainOnly?.queue.close();
  for (const server of [v6, busy]) await server?.close();
  await dns?.stop();
  tmp.remove();
});

async function send(test: TestQueue, to: string): Promise<void> {
  await test.queue.enqueue([
    {
      mailFrom: 'list-bounces@home.test',
      to,
      message: testMessage(to, 'IPv6'),
      origin: { kind: 'test' },
    },
  ]);
}

const receivedBy = (mx: NamedMx, to: string) => mx.received.filter((mail) => mail.to.includes(to));

const deferral = (test: TestQueue, to: string) =>
  test.logs.find((line) => line.includes('outbound message deferred') && line.includes(to));

describe('outbound over IPv6 via outbound.resolver', () => {
  it('an IPv6-only MX host with a validated TLSA record gets the mail over DANE on ::1', async () => {
    await send(withDane, 'bob@v6.test');
    await waitUntil(() => receivedBy(v6, 'bob@v6.test').length === 1, 'v6.test delivered', 60_000);
    const [mail] = receivedBy(v6, 'bob@v6.test');
    expect(mail!.secure).toBe(true);
    // TLS names the MX host, not the address connected to.
    expect(mail!.servername).toBe('mx.v6.test');
  }, 90_000);

  it('an IPv6-only MX host whose certificate matches no validated TLSA record gets nothing', async () => {
    await send(withDane, 'mallory@v6bad.test');
    await waitUntil(
      () => deferral(withDane, 'mallory@v6bad.test') !== undefined,
      'v6bad.test deferred',
      60_000,
    );
    expect(deferral(withDane, 'mallory@v6bad.test')).toContain(
      'DANE: the certificate matches no TLSA record',
    );
    expect(receivedBy(v6, 'mallory@v6bad.test')).toEqual([]);
  }, 90_000);

  it("tries an MX host's IPv4 address first, then its IPv6 one", async () => {
    await send(withDane, 'ann@pair.test');
    await waitUntil(
      () => receivedBy(v6, 'ann@pair.test').length === 1,
      'pair.test delivered',
      60_000,
    );
    expect(busy.recipients).toContain('ann@pair.test');
  }, 90_000);

  it('reports the reply of an address that answered, not a later one that could not be reached', async () => {
    await send(withDane, 'max@masked.test');
    await waitUntil(
      () => deferral(withDane, 'max@masked.test') !== undefined,
      'masked.test deferred',
      60_000,
    );
    expect(busy.recipients).toContain('max@masked.test');
    expect(deferral(withDane, 'max@masked.test')).toContain('busy here, try later');
  }, 90_000);

  it('with MTA-STS and DANE off, the address still comes from outbound.resolver', async () => {
    await send(plainOnly, 'pat@plain.test');
    await waitUntil(
      () => receivedBy(v6, 'pat@plain.test').length === 1,
      'plain.test delivered',
      60_000,
    );
  }, 90_000);
});
