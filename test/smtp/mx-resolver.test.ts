/**
 * `smtp.resolver`: the MX's SPF and DMARC lookups go to the configured DNS server (a real
 * unbound serving a zone this test writes), not to the system's. The system's resolver
 * knows nothing of `sender.test`, so `spf=pass` and `spf=fail` in the stored message's
 * Authentication-Results can only come from the configured server's records.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mailAuthResolver } from '../../src/dns/plain.js';
import { DnssecResolver } from '../helpers/dnssec-resolver.js';
import { type Harness, LOCAL_DOMAIN, startHarness } from '../helpers/smtp-harness.js';
import { expectRoundTrip, findStored } from '../helpers/smtp-readback.js';
import { swaks } from '../helpers/smtp-senders.js';

const alice = `alice@${LOCAL_DOMAIN}`;
let dns: DnssecResolver;
let harness: Harness;

beforeAll(async () => {
  dns = await DnssecResolver.start([
    {
      name: 'sender.test',
      signed: false,
      records: [
        'allowed IN TXT "v=spf1 ip4:127.0.0.1 -all"',
        'refused IN TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.allowed IN TXT "v=DMARC1; p=reject"',
      ],
    },
  ]);
  harness = await startHarness({ dnsResolver: mailAuthResolver(dns.address) });
}, 120_000);

afterAll(async () => {
  await harness?.stop();
  await dns?.stop();
});

async function deliverFrom(domain: string): Promise<string> {
  const messageId = `${randomBytes(6).toString('hex')}@${domain}`;
  const original = Buffer.from(
    `From: <someone@${domain}>\r\nTo: <${alice}>\r\nSubject: resolver\r\n` +
      `Message-ID: <${messageId}>\r\n\r\nChecked through the configured resolver.\r\n`,
  );
  const sent = await swaks(
    [
      ...['--server', '127.0.0.1', '--port', String(harness.mx.port)],
      ...['--from', `someone@${domain}`, '--to', alice, '--helo', `client.${domain}`],
    ],
    original.subarray(0, -2),
  );
  expect(sent.code, sent.transcript).toBe(0);
  const stored = await findStored(harness, 'alice', messageId);
  expect(stored).toHaveLength(1);
  return expectRoundTrip(stored[0]!, original, harness.groups.alice);
}

describe('MX with smtp.resolver', () => {
  it('finds SPF and DMARC records on the configured server', async () => {
    const trace = await deliverFrom('allowed.sender.test');
    expect(trace).toMatch(/spf=pass/);
    expect(trace).toMatch(/dmarc=pass/);
  });

  it('applies the configured server’s SPF policy (fail for an address it does not list)', async () => {
    const trace = await deliverFrom('refused.sender.test');
    expect(trace).toMatch(/spf=fail/);
  });
});
