/**
 * MTA-STS (RFC 8461) on the outbound queue's DNS path (docs/outbound.md "MTA-STS and
 * DANE"): MX, address and `_mta-sts` TXT records come from a real unbound
 * (`outbound.resolver`), policies from a local HTTPS server whose certificate is checked
 * for mta-sts.<domain> (`outbound.mtaSts.origins`, `caFile`), MX hosts are real SMTP
 * servers on port 25 of their own loopback addresses.
 *
 * * b.test, enforce, MX with a CA-issued certificate for its name → delivered over TLS;
 * * c.test, enforce, MX presenting a self-signed certificate → deferred, nothing sent;
 *   f.test has the same MX and no policy → delivered (opportunistic), so it is the policy;
 * * d.test, enforce, MX not named by the policy → deferred 4.7.5;
 * * e.test, testing, MX not named by the policy → delivered, and the mismatch logged.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnssecResolver } from '../helpers/dnssec-resolver.js';
import {
  loopbackPrefix,
  startNamedMx,
  startPolicyServer,
  type NamedMx,
  type PolicyServer,
} from '../helpers/outbound-named-mx.js';
import {
  openTestQueue,
  testMessage,
  waitUntil,
  type TestQueue,
} from '../helpers/outbound-remote.js';
import { makeTestCa } from '../helpers/tls-pki.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-mta-sts-');
const net = loopbackPrefix();
let dns: DnssecResolver;
let policies: PolicyServer;
let good: NamedMx;
let impostor: NamedMx;
let other: NamedMx;
let test: TestQueue;
let gMx: NamedMx;
let gPolicies: PolicyServer;
let caFile: string;

const policy = (mode: string, mx: string) =>
  `version: STSv1\r\nmode: ${mode}\r\nmx: ${mx}\r\nmax_age: 86400\r\n`;

beforeAll(async () => {
  const ca = makeTestCa(tmp.path);
  caFile = ca.certPath;
  gMx = await startNamedMx(`${net}4`, ca.issue('mx-g', ['mx.g.test']));
  gPolicies = await startPolicyServer(ca.issue('sts-g', ['mta-sts.g.test']), {
    'mta-sts.g.test': policy('enforce', 'mx.g.test'),
  });
  good = await startNamedMx(`${net}1`, ca.issue('mx-b', ['mx.b.test']));
  impostor = await startNamedMx(`${net}2`, ca.selfSigned('mx-c', ['mx.c.test', 'mx.f.test']));
  other = await startNamedMx(`${net}3`, ca.issue('mail-de', ['mail.d.test', 'mail.e.test']));
  policies = await startPolicyServer(
    ca.issue('sts', ['mta-sts.b.test', 'mta-sts.c.test', 'mta-sts.d.test', 'mta-sts.e.test']),
    {
      'mta-sts.b.test': policy('enforce', 'mx.b.test'),
      'mta-sts.c.test': policy('enforce', 'mx.c.test'),
      'mta-sts.d.test': policy('enforce', 'mx.d.test'),
      'mta-sts.e.test': policy('testing', 'mx.e.test'),
    },
  );
  const zone = (name: string, mx: string, address: string, sts: boolean) => ({
    name,
    signed: false,
    records: [
      `@ IN MX 10 ${mx}.`,
      `${mx}. IN A ${address}`,
      ...(sts ? [`_mta-sts IN TXT "v=STSv1; id=${name.replace('.', '')}1"`] : []),
    ],
  });
  dns = await DnssecResolver.start([
    zone('b.test', 'mx.b.test', good.address, true),
    zone('c.test', 'mx.c.test', impostor.address, true),
    zone('f.test', 'mx.f.test', impostor.address, false),
    zone('d.test', 'mail.d.test', other.address, true),
    zone('e.test', 'mail.e.test', other.address, true),
    {
      name: 'g.test',
      signed: false,
      records: [
        '@ IN MX 10 mx.g.test.',
        '@ IN MX 20 backup.g.test.',
        `mx IN A ${gMx.address}`,
        `backup IN A ${impostor.address}`,
        '_mta-sts IN TXT "v=STSv1; id=g1"',
      ],
    },
  ]);
  const origins = Object.fromEntries(
    ['b.test', 'c.test', 'd.test', 'e.test'].map((domain) => [domain, policies.origin]),
  );
  test = await openTestQueue(tmp.path, {
    resolver: dns.address,
    mtaSts: { origins, caFile: ca.certPath, timeout: '5s' },
    retryInitial: '1h',
    connectTimeout: '10s',
  });
  test.queue.start();
}, 120_000);

afterAll(async () => {
  await test?.queue.close();
  for (const server of [good, impostor, other, policies, gMx, gPolicies]) await server?.close();
  await dns?.stop();
  tmp.remove();
});

async function send(to: string): Promise<void> {
  await test.queue.enqueue([
    {
      mailFrom: 'list-bounces@home.test',
      to,
      message: testMessage(to, 'MTA-STS'),
      origin: { kind: 'test' },
    },
  ]);
}

function deferredFor(to: string): string | undefined {
  return test.logs.find(
    (line) => line.includes('outbound message deferred') && line.includes(`"to":"${to}"`),
  );
}

describe('MTA-STS', () => {
  it('enforce: delivers to the MX the policy names, over TLS with its CA-issued certificate', async () => {
    await send('bob@b.test');
    await waitUntil(() => good.received.length === 1, 'delivery to mx.b.test', 60_000);
    expect(good.received[0]!.to).toEqual(['bob@b.test']);
    expect(good.received[0]!.secure).toBe(true);
    expect(policies.requests).toContain('mta-sts.b.test');
  }, 90_000);

  it('enforce: an MX with a certificate no CA vouches for gets nothing; the attempt is deferred', async () => {
    await send('carol@c.test');
    await waitUntil(() => deferredFor('carol@c.test') !== undefined, 'c.test deferred', 60_000);
    expect(deferredFor('carol@c.test')).toMatch(/TLS|certificate/i);
    expect(impostor.received.filter((mail) => mail.to.includes('carol@c.test'))).toEqual([]);
    // The same MX without a policy (f.test) is sent to, opportunistically.
    await send('fred@f.test');
    await waitUntil(
      () => impostor.received.some((mail) => mail.to.includes('fred@f.test')),
      'f.test delivered',
      60_000,
    );
  }, 120_000);

  it('enforce: an MX the policy does not name is not used (4.7.5)', async () => {
    await send('dan@d.test');
    await waitUntil(() => deferredFor('dan@d.test') !== undefined, 'd.test deferred', 60_000);
    expect(deferredFor('dan@d.test')).toContain('no MX host matches mx.d.test');
    expect(other.received.filter((mail) => mail.to.includes('dan@d.test'))).toEqual([]);
  }, 90_000);

  it('testing: the mismatch is logged and the mail still sent', async () => {
    await send('eve@e.test');
    await waitUntil(
      () => other.received.some((mail) => mail.to.includes('eve@e.test')),
      'e.test delivered',
      60_000,
    );
    expect(
      test.logs.some(
        (line) => line.includes('MTA-STS (testing)') && line.includes('"host":"mail.e.test"'),
      ),
    ).toBe(true);
  }, 90_000);

  it('a cached policy outlives a restart and stays in force when it can no longer be fetched', async () => {
    const dir = join(tmp.path, 'g-queue');
    mkdirSync(dir);
    const section = {
      resolver: dns.address,
      mtaSts: { origins: { 'g.test': gPolicies.origin }, caFile, timeout: '5s' },
      retryInitial: '1h',
      connectTimeout: '10s',
    };
    const message = (to: string) => ({
      mailFrom: 'list-bounces@home.test',
      to,
      message: testMessage(to, 'MTA-STS'),
      origin: { kind: 'test' },
    });
    const first = await openTestQueue(dir, section);
    first.queue.start();
    await first.queue.enqueue([message('gina@g.test')]);
    await waitUntil(() => gMx.received.length === 1, 'delivery to mx.g.test', 60_000);
    await first.queue.close();
    expect(readFileSync(join(dir, 'mta-sts.json'), 'utf8')).toContain('mx.g.test');
    // The policy host and the MX it names go away. Without the cached policy the backup MX
    // (self-signed, not in the policy) would get the next message.
    await gPolicies.close();
    await gMx.close();
    const second = await openTestQueue(dir, section);
    second.queue.start();
    try {
      await second.queue.enqueue([message('gus@g.test')]);
      await waitUntil(
        () =>
          second.logs.some(
            (l) => l.includes('outbound message deferred') && l.includes('gus@g.test'),
          ),
        'g.test deferred',
        60_000,
      );
      expect(impostor.received.filter((mail) => mail.to.includes('gus@g.test'))).toEqual([]);
    } finally {
      await second.queue.close();
    }
  }, 120_000);
});
