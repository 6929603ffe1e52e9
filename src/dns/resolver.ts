/**
 * The resolver whose AD bit the gateway believes (docs/sending.md "SMIMEA",
 * docs/outbound.md "DANE"). The AD bit travels unsigned from the resolver to us: it means
 * something only if nobody on the way can set it. So the resolver is either configured
 * (`host:port`, a validating resolver the operator trusts, normally on this host) or the
 * system's first `nameserver` in /etc/resolv.conf, and then only when that is a loopback
 * address (a local validating resolver such as unbound; RFC 6698 §4.1 and RFC 7672 §2.1.1
 * both ask for a trusted link to it).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DnsError, queryDns, type DnsReply, type DnsServer, type QueryType } from './client.js';

export interface ValidatingResolver {
  /** "host:port", for logs and `recrypt lookup`. */
  readonly server: string;
  query(name: string, type: QueryType): Promise<DnsReply>;
}

export interface ResolverOptions {
  /** "host:port" or "[v6]:port"; absent → the system's nameserver, if on loopback. */
  resolver?: string | undefined;
  timeoutMs: number;
  /** Read instead of /etc/resolv.conf (tests). */
  resolvConf?: string;
}

export function parseServer(value: string): DnsServer {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65_535) throw new DnsError(`not host:port: ${value}`);
  return { host: match[1] ?? match[2]!, port };
}

function isLoopback(host: string): boolean {
  return (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
}

/** The first nameserver in resolv.conf text, when it is one this host can trust. */
export function systemResolverServer(resolvConf: string): DnsServer {
  for (const line of resolvConf.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (match === null) continue;
    const host = match[1]!.replace(/%.*$/, '');
    if (!isLoopback(host))
      throw new DnsError(
        `the system resolver ${host} is not on this host: its DNSSEC answers (the AD bit) ` +
          'could be forged on the way; configure a validating resolver (host:port)',
      );
    return { host, port: 53 };
  }
  throw new DnsError('no nameserver in /etc/resolv.conf; configure a validating resolver');
}

export function validatingResolver(options: ResolverOptions): ValidatingResolver {
  const server =
    options.resolver !== undefined
      ? parseServer(options.resolver)
      : systemResolverServer(options.resolvConf ?? readFileSync('/etc/resolv.conf', 'utf8'));
  const label =
    isIP(server.host) === 6 ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
  return {
    server: label,
    query: (name, type) => queryDns(server, name, type, options.timeoutMs),
  };
}
