/**
 * Where a recipient's mail goes next: a configured per-domain route, else the gateway's
 * own MX for a domain it serves, else the smarthost
 * (`outbound.relay`), else the domain's MX hosts from DNS (RFC 5321 §5.1): MX records by
 * preference (equal ones shuffled), no MX → the domain itself if it has an address, a
 * null MX (RFC 7505) → a permanent failure. DNS trouble is temporary.
 */
import { promises as dns } from 'node:dns';
import { domainToASCII } from 'node:url';
import type { OutboundConfig } from '../config/schema.js';
import type { CertificateAssociation } from '../dns/index.js';

export interface Hop {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (a relay on 465). */
  secure: boolean;
  auth?: { user: string; pass: string };
  /** True for the smarthost: it sees every message and, with auth, a password. */
  relay: boolean;
  /** One of the recipient domain's MX hosts from DNS (MTA-STS and DANE apply only to these). */
  mx?: boolean;
  /**
   * Connect to this address (IPv4 or IPv6, found via `outbound.resolver`) rather than
   * resolving `host`; TLS still names `host`.
   */
  address?: string;
  /** The TLS this hop must have (transport-security.ts); absent: as `requireTls`/`verifyTls` say. */
  require?: HopTls;
}

/** MTA-STS enforce: TLS, certificate valid for the MX name. DANE: TLS, matching a TLSA record. */
export type HopTls =
  { kind: 'pkix'; why: string } | { kind: 'dane'; tlsa: CertificateAssociation[] };

/** The part of node:dns the routing uses; tests pass their own. */
export interface MxResolver {
  resolveMx(domain: string): Promise<Array<{ exchange: string; priority: number }>>;
  resolve4(domain: string): Promise<string[]>;
  resolve6(domain: string): Promise<string[]>;
}

export const systemResolver: MxResolver = {
  resolveMx: (domain) => dns.resolveMx(domain),
  resolve4: (domain) => dns.resolve4(domain),
  resolve6: (domain) => dns.resolve6(domain),
};

export type RoutePlan =
  | { kind: 'hops'; hops: Hop[] }
  | { kind: 'failed'; permanent: boolean; status: string; reason: string };

/** Hosts tried per attempt, in order, before the attempt counts as deferred. */
const MAX_HOPS = 5;
const SMTP_PORT = 25;

/** DNS answers that mean "no such record", as opposed to "could not ask". */
const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND']);

export function domainOf(address: string): string {
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return domainToASCII(domain) || domain;
}

export function parseHostAndPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  if (match === null) throw new Error(`not host:port: ${value}`);
  return { host: match[1] ?? match[2]!, port: Number(match[3]) };
}

export interface RoutingOptions {
  config: Pick<OutboundConfig, 'routes' | 'relay'>;
  resolver: MxResolver;
  /** The relay's password (read from relay.passwordFile at start). */
  relayPassword?: string;
  /**
   * The gateway's own MX for a domain it serves (after `routes`, before the relay and
   * DNS): reports about its own list copies come back to it without a DNS round trip.
   */
  localHop?: (domain: string) => Promise<{ host: string; port: number } | null>;
}

export async function planRoute(recipient: string, options: RoutingOptions): Promise<RoutePlan> {
  const domain = domainOf(recipient);
  const route = Object.entries(options.config.routes).find(
    ([name]) => (domainToASCII(name.toLowerCase()) || name.toLowerCase()) === domain,
  );
  if (route !== undefined) {
    return { kind: 'hops', hops: [{ ...parseHostAndPort(route[1]), secure: false, relay: false }] };
  }
  const local = await options.localHop?.(domain);
  if (local != null) return { kind: 'hops', hops: [{ ...local, secure: false, relay: false }] };
  const relay = options.config.relay;
  if (relay !== undefined) {
    const auth =
      relay.user !== undefined && options.relayPassword !== undefined
        ? { user: relay.user, pass: options.relayPassword }
        : undefined;
    return {
      kind: 'hops',
      hops: [
        {
          host: relay.host,
          port: relay.port,
          secure: relay.secure,
          relay: true,
          ...(auth ? { auth } : {}),
        },
      ],
    };
  }
  return mxHops(domain, options.resolver);
}

function dnsFailure(domain: string, what: string, error: unknown): RoutePlan {
  const code = (error as NodeJS.ErrnoException).code ?? String(error);
  return {
    kind: 'failed',
    permanent: false,
    status: '4.4.3',
    reason: `DNS ${what} lookup for ${domain} failed: ${code}`,
  };
}

async function mxHops(domain: string, resolver: MxResolver): Promise<RoutePlan> {
  let records: Array<{ exchange: string; priority: number }>;
  try {
    records = await resolver.resolveMx(domain);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND') {
      return {
        kind: 'failed',
        permanent: true,
        status: '5.1.2',
        reason: `${domain} does not exist (DNS NXDOMAIN)`,
      };
    }
    if (code !== 'ENODATA') return dnsFailure(domain, 'MX', error);
    records = [];
  }
  const exchanges = records.map((record) => ({
    priority: record.priority,
    host: record.exchange.replace(/\.$/, '').toLowerCase(),
  }));
  if (exchanges.some((record) => record.host === '')) {
    // RFC 7505: a lone "0 ." says the domain takes no mail; mixed with real MX it is an error.
    return exchanges.length === 1
      ? {
          kind: 'failed',
          permanent: true,
          status: '5.1.10',
          reason: `${domain} accepts no mail (null MX)`,
        }
      : {
          kind: 'failed',
          permanent: false,
          status: '4.4.3',
          reason: `${domain} has a null MX next to other MX records`,
        };
  }
  if (exchanges.length === 0) return implicitMx(domain, resolver);
  const shuffled = exchanges
    .map((record) => ({ ...record, tieBreak: Math.random() }))
    .sort((a, b) => a.priority - b.priority || a.tieBreak - b.tieBreak);
  const hosts = [...new Set(shuffled.map((record) => record.host))].slice(0, MAX_HOPS);
  return {
    kind: 'hops',
    hops: hosts.map((host) => ({ host, port: SMTP_PORT, secure: false, relay: false, mx: true })),
  };
}

/** RFC 5321 §5.1: without MX records the domain itself is the host, if it has an address. */
async function implicitMx(domain: string, resolver: MxResolver): Promise<RoutePlan> {
  const lookups = await Promise.allSettled([resolver.resolve4(domain), resolver.resolve6(domain)]);
  if (lookups.some((lookup) => lookup.status === 'fulfilled' && lookup.value.length > 0)) {
    return { kind: 'hops', hops: [{ host: domain, port: SMTP_PORT, secure: false, relay: false }] };
  }
  const trouble = lookups.find(
    (lookup): lookup is PromiseRejectedResult =>
      lookup.status === 'rejected' &&
      !NO_RECORD.has((lookup.reason as NodeJS.ErrnoException).code ?? ''),
  );
  if (trouble !== undefined) return dnsFailure(domain, 'address', trouble.reason);
  return {
    kind: 'failed',
    permanent: true,
    status: '5.1.2',
    reason: `${domain} has no MX and no address record`,
  };
}
