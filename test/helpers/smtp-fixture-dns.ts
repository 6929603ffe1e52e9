/**
 * A DNS resolver for mailauth that answers from `test/fixtures/smtp/dns.json` and says
 * NXDOMAIN to everything else, so SPF/DKIM/DMARC results in tests do not depend on the
 * network. Same shape as `dns.promises.resolve`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DnsResolver } from '../../src/smtp/ports.js';

export const smtpFixturesDir = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'smtp',
);

export function fixtureDnsResolver(file = join(smtpFixturesDir, 'dns.json')): DnsResolver {
  const records = JSON.parse(readFileSync(file, 'utf8')) as Record<
    string,
    Record<string, string[]> | string
  >;
  return async (name, rrtype) => {
    const table = records[rrtype.toUpperCase()];
    const answers =
      typeof table === 'object' ? table[name.toLowerCase().replace(/\.$/, '')] : undefined;
    if (answers === undefined) {
      throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    }
    return rrtype.toUpperCase() === 'TXT' ? answers.map((answer) => [answer]) : answers;
  };
}
