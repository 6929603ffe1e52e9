/**
 * SMIMEA DNS records (RFC 8162) for a group certificate, so that a sender's client can
 * find the key to encrypt to through DNSSEC instead of (or besides) the HTTPS profile.
 * Owner name (RFC 8162 §3): hex of SHA2-256 of the local part's UTF-8 bytes, as given
 * (no case folding), truncated to 28 octets, then `._smimecert.` and the domain.
 * RDATA fields are those of TLSA (RFC 6698 §2). Pure: bytes in, zone-file text out.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { parseAddress } from './address.js';
import { ProfileError } from './errors.js';

/** 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 6698 §2.1.1; RFC 7218 names). */
export type SmimeaUsage = 0 | 1 | 2 | 3;
/** 0 the full certificate, 1 its SubjectPublicKeyInfo. */
export type SmimeaSelector = 0 | 1;
/** 0 the selected bytes, 1 their SHA-256, 2 their SHA-512. */
export type SmimeaMatchingType = 0 | 1 | 2;

export interface SmimeaOptions {
  usage?: SmimeaUsage;
  selector?: SmimeaSelector;
  matchingType?: SmimeaMatchingType;
  /** TTL written into `record`; omitted (zone default) when absent. */
  ttl?: number;
}

export interface SmimeaRecord {
  /** Fully qualified owner name, trailing dot included. */
  owner: string;
  usage: SmimeaUsage;
  selector: SmimeaSelector;
  matchingType: SmimeaMatchingType;
  /** Certificate association data, lower-case hex. */
  data: string;
  /** RDATA in presentation form: `3 0 0 <hex>`. */
  rdata: string;
  /** One zone-file line: `<owner> [ttl] IN SMIMEA <rdata>`. */
  record: string;
  /** The same record in RFC 3597 generic form, for DNS servers that predate SMIMEA (type 53). */
  genericRecord: string;
}

/** The owner name for an address's SMIMEA records. */
export function smimeaOwnerName(address: string): string {
  const { local, domain } = parseAddress(address);
  const hash = createHash('sha256').update(local, 'utf8').digest().subarray(0, 28);
  return `${hash.toString('hex')}._smimecert.${domain}.`;
}

export function smimeaRecord(
  address: string,
  groupCertificateDer: Uint8Array,
  options: SmimeaOptions = {},
): SmimeaRecord {
  const { usage = 3, selector = 0, matchingType = 0, ttl } = options;
  if (![0, 1, 2, 3].includes(usage)) throw new ProfileError('invalid-argument', 'usage: not 0..3');
  if (![0, 1].includes(selector))
    throw new ProfileError('invalid-argument', 'selector: not 0 or 1');
  if (![0, 1, 2].includes(matchingType))
    throw new ProfileError('invalid-argument', 'matchingType: not 0..2');
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 0 || ttl > 2_147_483_647)) {
    throw new ProfileError('invalid-argument', 'ttl: not an integer in [0, 2^31-1]');
  }
  const owner = smimeaOwnerName(address);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(Buffer.from(groupCertificateDer));
  } catch {
    throw new ProfileError('invalid-argument', 'groupCertificateDer: not a DER X.509 certificate');
  }
  const selected =
    selector === 0
      ? certificate.raw
      : certificate.publicKey.export({ type: 'spki', format: 'der' });
  const associated =
    matchingType === 0
      ? selected
      : createHash(matchingType === 1 ? 'sha256' : 'sha512')
          .update(selected)
          .digest();
  const data = associated.toString('hex');
  const rdata = `${usage} ${selector} ${matchingType} ${data}`;
  const ttlField = ttl === undefined ? '' : ` ${ttl}`;
  const wire = Buffer.concat([Buffer.from([usage, selector, matchingType]), associated]);
  return {
    owner,
    usage,
    selector,
    matchingType,
    data,
    rdata,
    record: `${owner}${ttlField} IN SMIMEA ${rdata}`,
    genericRecord: `${owner}${ttlField} IN TYPE53 \\# ${wire.length} ${wire.toString('hex')}`,
  };
}
