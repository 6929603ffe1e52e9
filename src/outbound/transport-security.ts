/**
 * What TLS each MX host of a recipient domain must offer (docs/outbound.md "MTA-STS and
 * DANE"), decided after routing and before an attempt. Only hosts from the domain's own
 * MX records count: a configured route or the relay is the operator's choice.
 *
 * 1. DANE (RFC 7672), with `outbound.dane.enabled`: when the validating resolver says
 *    the domain's MX records are DNSSEC-validated, each MX host with validated address
 *    records (A or AAAA: an IPv6-only host has no A records) has its `_25._tcp` TLSA
 *    records asked for; validated ones with usage 2 (DANE-TA) or 3 (DANE-EE) make that
 *    host need TLS whose certificate matches one of them (dane.ts). A secure MX host whose
 *    TLSA lookup fails (bogus, SERVFAIL) is skipped for this attempt (§2.2: it might have
 *    had records).
 * 2. MTA-STS (RFC 8461), for hosts without DANE (DANE wins, §2): an `enforce` policy
 *    keeps only the MX hosts that match it and makes them need TLS with a certificate
 *    valid for their name; none matching → the attempt is deferred (4.7.5). `testing`
 *    only logs the hosts that would fail.
 *
 * With `outbound.resolver`, the MX hosts' addresses are looked up there too, A and AAAA,
 * and each address becomes a hop of its own (RFC 5321 §5.1: the addresses of an MX host
 * are tried in turn): IPv4 first (this host's IPv6 route is the likelier one to be
 * missing), then IPv6, at most two of each family per host so that one host with many
 * addresses cannot use up an attempt. The hop keeps the MX name for TLS (SNI, certificate names, DANE-TA).
 */
import type { Logger } from 'pino';
import type { OutboundConfig } from '../config/schema.js';
import { type PlainResolver, type ValidatingResolver, validatingResolver } from '../dns/index.js';
import { StartupError } from '../gateway/startup-errors.js';
import { type MtaSts, mtaSts, mxMatchesPolicy } from './mta-sts.js';
import type { Hop, RoutePlan } from './routing.js';

export interface TransportSecurityOptions {
  mtaSts?: MtaSts;
  /** The validating resolver for DANE; absent: DANE off. */
  dane?: ValidatingResolver;
  /** A host's addresses via `outbound.resolver`, in trying order; absent: nodemailer resolves. */
  addresses?: (host: string) => Promise<string[]>;
  logger: Logger;
}

export interface TransportSecurity {
  secure(domain: string, hops: Hop[]): Promise<RoutePlan>;
}

export function transportSecurity(options: TransportSecurityOptions): TransportSecurity {
  return {
    async secure(domain, planned) {
      if (!planned.some((hop) => hop.mx === true)) return { kind: 'hops', hops: planned };
      let hops =
        options.dane === undefined
          ? planned
          : await withDane(domain, planned, options.dane, options.logger);
      if (options.mtaSts !== undefined) {
        const policy = await options.mtaSts.policyFor(domain);
        if (policy !== null && policy.mode !== 'none') {
          const fails = (hop: Hop) =>
            hop.require === undefined && !mxMatchesPolicy(hop.host, policy);
          if (policy.mode === 'testing') {
            for (const hop of hops.filter(fails))
              options.logger.warn(
                { domain, host: hop.host, policy: policy.id },
                'MTA-STS (testing): MX host not in the policy; sent anyway',
              );
          } else {
            hops = hops
              .filter((hop) => !fails(hop))
              .map((hop) =>
                hop.require === undefined
                  ? {
                      ...hop,
                      require: { kind: 'pkix' as const, why: `MTA-STS policy ${policy.id}` },
                    }
                  : hop,
              );
            if (hops.length === 0)
              return {
                kind: 'failed',
                permanent: false,
                status: '4.7.5',
                reason: `MTA-STS policy of ${domain} (enforce): no MX host matches ${policy.mx.join(', ')}`,
              };
          }
        }
      }
      if (options.addresses !== undefined) hops = await withAddresses(hops, options.addresses);
      if (hops.length === 0)
        return {
          kind: 'failed',
          permanent: false,
          status: '4.4.3',
          reason: `no address or usable TLSA answer for the MX hosts of ${domain}`,
        };
      return { kind: 'hops', hops };
    },
  };
}

async function withDane(
  domain: string,
  hops: Hop[],
  resolver: ValidatingResolver,
  logger: Logger,
): Promise<Hop[]> {
  let secureMx: boolean;
  try {
    const mx = await resolver.query(domain, 'MX');
    secureMx = mx.rcode === 'NOERROR' && mx.authenticated && mx.records.length > 0;
  } catch {
    secureMx = false;
  }
  if (!secureMx) return hops;
  const out: Hop[] = [];
  for (const hop of hops) {
    if (hop.mx !== true) {
      out.push(hop);
      continue;
    }
    try {
      // §2.2.2: only a host whose address records are validated too has usable TLSA records.
      if (!(await hasValidatedAddress(hop.host, resolver))) {
        out.push(hop);
        continue;
      }
      const tlsa = await resolver.query(`_25._tcp.${hop.host}`, 'TLSA');
      if (tlsa.rcode !== 'NOERROR' && tlsa.rcode !== 'NXDOMAIN') throw new Error(tlsa.rcode);
      const usable = tlsa.authenticated
        ? tlsa.records.flatMap((record) =>
            record.type === 'TLSA' && (record.usage === 2 || record.usage === 3) ? [record] : [],
          )
        : [];
      out.push(usable.length === 0 ? hop : { ...hop, require: { kind: 'dane', tlsa: usable } });
    } catch (error) {
      logger.warn(
        { domain, host: hop.host, reason: (error as Error).message },
        'DANE: address or TLSA lookup failed for a DNSSEC-signed MX host; host skipped',
      );
    }
  }
  return out;
}

/**
 * Whether either family of the host's address records is DNSSEC-validated (both are
 * normally in one zone, signed alike). Throws only when neither lookup got an answer.
 */
async function hasValidatedAddress(host: string, resolver: ValidatingResolver): Promise<boolean> {
  const lookups = await Promise.allSettled([
    resolver.query(host, 'A'),
    resolver.query(host, 'AAAA'),
  ]);
  const answers = lookups.flatMap((lookup) =>
    lookup.status === 'fulfilled' ? [lookup.value] : [],
  );
  if (answers.length === 0) throw (lookups[0] as PromiseRejectedResult).reason;
  return answers.some((answer) => answer.authenticated && answer.records.length > 0);
}

/** Each MX hop becomes one hop per address found; a host without any is left out. */
async function withAddresses(
  hops: Hop[],
  addresses: (host: string) => Promise<string[]>,
): Promise<Hop[]> {
  const lookedUp = (hop: Hop) => hop.mx === true && hop.address === undefined;
  const found = await Promise.all(
    hops.map((hop) => (lookedUp(hop) ? addresses(hop.host).catch(() => []) : [])),
  );
  return hops.flatMap((hop, at) =>
    lookedUp(hop) ? found[at]!.map((address) => ({ ...hop, address })) : [hop],
  );
}

const ADDRESSES_PER_FAMILY = 2;

/** The addresses to try for one host: IPv4, then IPv6 (see the header). */
async function hostAddresses(
  dns: Pick<PlainResolver, 'resolve4' | 'resolve6'>,
  host: string,
): Promise<string[]> {
  const families = await Promise.allSettled([dns.resolve4(host), dns.resolve6(host)]);
  return families.flatMap((family) =>
    family.status === 'fulfilled' ? family.value.slice(0, ADDRESSES_PER_FAMILY) : [],
  );
}

/** From the `outbound` section; undefined when MTA-STS, DANE and `resolver` are all off. */
export function transportSecurityFromConfig(
  config: Pick<OutboundConfig, 'resolver' | 'mtaSts' | 'dane' | 'connectTimeout'>,
  dns: PlainResolver,
  extraCa: string | undefined,
  logger: Logger,
  /** Where MTA-STS policies are kept across restarts. */
  cacheFile?: string,
): TransportSecurity | undefined {
  if (!config.mtaSts.enabled && !config.dane.enabled && config.resolver === undefined)
    return undefined;
  let dane: ValidatingResolver | undefined;
  if (config.dane.enabled) {
    try {
      dane = validatingResolver({ resolver: config.resolver, timeoutMs: config.connectTimeout });
    } catch (error) {
      throw new StartupError(`outbound.dane: ${(error as Error).message}`);
    }
  }
  return transportSecurity({
    ...(config.mtaSts.enabled
      ? {
          mtaSts: mtaSts({
            txt: (name) => dns.resolveTxt(name),
            origins: config.mtaSts.origins,
            ...(extraCa === undefined ? {} : { ca: extraCa }),
            timeoutMs: config.mtaSts.timeout,
            logger,
            ...(cacheFile === undefined ? {} : { cacheFile }),
          }),
        }
      : {}),
    ...(dane === undefined ? {} : { dane }),
    ...(config.resolver === undefined
      ? {}
      : { addresses: (host: string) => hostAddresses(dns, host) }),
    logger,
  });
}
