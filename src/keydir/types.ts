/**
 * The harvested key directory (docs/sending.md "Harvested certificates"): S/MIME signer
 * certificates the MX saw on verified signed mail, kept per domain and address, for
 * submission to encrypt to later (the CipherMail/SEPPmail practice). Two stores implement
 * `KeyDirectory` (SQLite in the data directory, Redis beside the key store); both pass
 * test/keydir/contract.ts.
 */
import type { RsaKeyTransport } from '../submission/key-sources.js';

export type HarvestedKeyType = 'rsa' | 'ec-p256';

export interface HarvestedCertificate {
  /** The address the certificate names and the signed mail came From (lower-case). */
  address: string;
  /** The part after the last "@". */
  domain: string;
  /** SHA-256 of the DER, lower-case hex: one record per address and certificate. */
  fingerprint: string;
  der: Uint8Array;
  keyType: HarvestedKeyType;
  notBefore: Date;
  notAfter: Date;
  /** When signed mail last showed this certificate (the newest is used first). */
  seenAt: Date;
  /** For RSA: what the signer's client announced it reads (SMIMECapabilities). */
  rsaKeyTransport?: RsaKeyTransport;
}

export interface KeyDirectory {
  /**
   * Adds the certificate, or refreshes `seenAt` (and the announced key transport) when it
   * is known; then keeps at most `maxPerAddress` for the address, dropping the expired and
   * then the least recently seen.
   */
  remember(certificate: HarvestedCertificate, maxPerAddress: number): Promise<void>;
  /** The address's certificates, most recently seen first (expired ones included). */
  forAddress(address: string): Promise<HarvestedCertificate[]>;
  /** Every certificate of a domain, or of every domain; by address, then most recent first. */
  list(domain?: string): Promise<HarvestedCertificate[]>;
  /** Removes one certificate (by fingerprint) or all of an address's; how many went. */
  remove(address: string, fingerprint?: string): Promise<number>;
  close(): Promise<void>;
}

export function domainOfAddress(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/** Most recently seen first. */
export function byRecency(a: HarvestedCertificate, b: HarvestedCertificate): number {
  return b.seenAt.getTime() - a.seenAt.getTime() || a.fingerprint.localeCompare(b.fingerprint);
}

/** What `remember` keeps: the records sorted, expired ones and the oldest dropped past `max`. */
export function keptAfterAdding(
  records: readonly HarvestedCertificate[],
  max: number,
  now: number,
): { keep: HarvestedCertificate[]; drop: HarvestedCertificate[] } {
  const valid = records.filter((r) => r.notAfter.getTime() > now).sort(byRecency);
  const expired = records.filter((r) => r.notAfter.getTime() <= now).sort(byRecency);
  const ordered = [...valid, ...expired];
  return { keep: ordered.slice(0, max), drop: ordered.slice(max) };
}
