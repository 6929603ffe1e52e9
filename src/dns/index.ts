/**
 * src/dns — DNS questions whose answers say whether they were DNSSEC-validated (the AD
 * bit of a trusted validating resolver): SMIMEA keys for submission (RFC 8162) and TLSA
 * records for outbound DANE (RFC 7672). Plain lookups stay with node:dns.
 */
export {
  DnsError,
  queryDns,
  type CertificateAssociation,
  type DnsRecord,
  type DnsReply,
  type DnsServer,
  type QueryType,
} from './client.js';
export {
  parseServer,
  systemResolverServer,
  validatingResolver,
  type ResolverOptions,
  type ValidatingResolver,
} from './resolver.js';
export { plainResolver, type PlainResolver } from './plain.js';
