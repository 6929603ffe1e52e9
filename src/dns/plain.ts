/**
 * Plain lookups (no DNSSEC status) through node:dns, either the system's resolver or one
 * configured `host:port` (`outbound.resolver`, docs/outbound.md): MX and address records
 * for routing, TXT records for MTA-STS; and the MX's SPF/DKIM/DMARC lookups (`smtp.resolver`).
 */
import { promises as dns } from 'node:dns';
import type { DnsResolver } from '../smtp/ports.js';
import { parseServer } from './resolver.js';

export interface PlainResolver {
  resolveMx(domain: string): Promise<Array<{ exchange: string; priority: number }>>;
  resolve4(domain: string): Promise<string[]>;
  resolve6(domain: string): Promise<string[]>;
  /** Each record's strings joined (RFC 7208 §3.3); [] when the name has no TXT record. */
  resolveTxt(name: string): Promise<string[]>;
}

const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND']);

export function plainResolver(server?: string): PlainResolver {
  let resolver: Pick<typeof dns, 'resolveMx' | 'resolve4' | 'resolve6' | 'resolveTxt'> = dns;
  if (server !== undefined) {
    const { host, port } = parseServer(server);
    const own = new dns.Resolver();
    own.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
    resolver = own;
  }
  return {
    resolveMx: (domain) => resolver.resolveMx(domain),
    resolve4: (domain) => resolver.resolve4(domain),
    resolve6: (domain) => resolver.resolve6(domain),
    resolveTxt: (name) =>
      resolver.resolveTxt(name).then(
        (records) => records.map((chunks) => chunks.join('')),
        (error: NodeJS.ErrnoException) => {
          if (NO_RECORD.has(error.code ?? '')) return [];
          throw error;
        },
      ),
  };
}

/**
 * The MX's resolver for SPF, DKIM and DMARC (`smtp.resolver`): `dns.resolve`'s answers
 * (what mailauth expects) from one configured server instead of the system's.
 */
export function mailAuthResolver(server: string): DnsResolver {
  const { host, port } = parseServer(server);
  const own = new dns.Resolver();
  own.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
  return (name, rrtype) => own.resolve(name, rrtype) as ReturnType<DnsResolver>;
}
