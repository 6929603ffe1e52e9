/**
 * The SMIMEA key source (RFC 8162; docs/sending.md "SMIMEA"): the recipient's S/MIME
 * certificate published in DNS at `<sha256(local part)[0..28] hex>._smimecert.<domain>`,
 * used only when the validating resolver (src/dns) says the answer is DNSSEC-validated
 * (the AD bit). An unsigned record, a bogus one (the resolver answers SERVFAIL) or one
 * that could not be asked is no key, with the reason.
 *
 * Which records give a key: only a whole certificate (selector 0, matching type 0) can be
 * encrypted to. Of those, usage 3 (DANE-EE: this is the recipient's certificate, no CA
 * needed; RFC 7671 §5.1) is used, checked for its validity dates and for a key the
 * envelope code can encrypt to (P-256 by KeyAgreeRecipientInfo, RSA by
 * KeyTransRecipientInfo with PKCS#1 v1.5, which every S/MIME client reads). Usage 1 (PKIX-EE) would also need a CA path the gateway
 * cannot build from DNS alone, and usages 0/2 name CAs, not a recipient: those records,
 * and hashes (matching types 1/2, which only confirm a certificate found elsewhere), are
 * skipped with the reason. The local part is hashed as submission hands it over
 * (lower-cased, as every key source gets it; RFC 8162 §3 leaves case to the publisher).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { CertificateAssociation, ValidatingResolver } from '../dns/index.js';
import { smimeaOwnerName } from '../profiles/smimea.js';
import { envelopeForGroup, keyTransRecipientInfo } from '../recrypt/index.js';
import type { KeyAnswer, KeySource } from './key-sources.js';

const MISS_TTL_MS = 5 * 60_000;

export interface SmimeaSourceOptions {
  resolver: ValidatingResolver;
  /** Upper bound on how long an answer is used (the record's TTL may be shorter). */
  cacheTtlMs: number;
  logger?: Logger;
  now?: () => number;
  maxEntries?: number;
}

type Usable =
  | { ok: true; certificate: X509Certificate; association: CertificateAssociation }
  | { ok: false; why: string };

/** Whether one record gives a certificate to encrypt to, and if not, why. */
export function usableAssociation(association: CertificateAssociation, now: number): Usable {
  const { usage, selector, matchingType } = association;
  const label = `${usage} ${selector} ${matchingType}`;
  if (selector !== 0 || matchingType !== 0)
    return {
      ok: false,
      why: `SMIMEA ${label}: only a whole certificate (x 0 0) can be encrypted to`,
    };
  if (usage !== 3)
    return {
      ok: false,
      why:
        usage === 1
          ? `SMIMEA ${label}: PKIX-EE needs a CA path, not supported (publish usage 3)`
          : `SMIMEA ${label}: names a CA, not the recipient's certificate`,
    };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(association.data);
  } catch {
    return { ok: false, why: `SMIMEA ${label}: not a DER certificate` };
  }
  if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) <= now)
    return { ok: false, why: `SMIMEA ${label}: certificate not valid now` };
  try {
    // The envelope code's own check of the key, as send.ts will use it (RSA by
    // KeyTransRecipientInfo, P-256 by KeyAgreeRecipientInfo): what it can encrypt to is a key.
    if (certificate.publicKey.asymmetricKeyType === 'rsa')
      keyTransRecipientInfo({ certificate: certificate.raw, scheme: 'rsa-pkcs1' }, randomBytes(32));
    else envelopeForGroup(Buffer.from('probe'), [certificate.raw]);
  } catch {
    return { ok: false, why: `SMIMEA ${label}: a key this gateway cannot encrypt to` };
  }
  return { ok: true, certificate, association };
}

export function smimeaSource(options: SmimeaSourceOptions): KeySource {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, KeyAnswer>();

  const ask = async (address: string): Promise<KeyAnswer> => {
    const miss = (reason: string): KeyAnswer => ({
      kind: 'none',
      reason,
      validUntil: new Date(now() + Math.min(MISS_TTL_MS, options.cacheTtlMs)),
    });
    let owner: string;
    try {
      owner = smimeaOwnerName(address);
    } catch {
      return miss('not an address an SMIMEA record can exist for');
    }
    let reply;
    try {
      reply = await options.resolver.query(owner, 'SMIMEA');
    } catch (error) {
      return miss(`SMIMEA lookup failed: ${(error as Error).message}`);
    }
    if (reply.rcode === 'NXDOMAIN' || (reply.rcode === 'NOERROR' && reply.records.length === 0))
      return miss('no SMIMEA record');
    if (reply.rcode !== 'NOERROR')
      return miss(`SMIMEA lookup failed: ${reply.rcode} (a bogus DNSSEC signature answers so)`);
    if (!reply.authenticated) {
      options.logger?.info(
        { rcpt: address, owner },
        'SMIMEA record not DNSSEC-validated; not used',
      );
      return miss('SMIMEA record not DNSSEC-validated; not used');
    }
    const reasons: string[] = [];
    for (const record of reply.records) {
      if (record.type !== 'SMIMEA') continue;
      const usable = usableAssociation(record, now());
      if (!usable.ok) {
        reasons.push(usable.why);
        continue;
      }
      const expires = Math.min(
        Date.parse(usable.certificate.validTo),
        now() + Math.max(record.ttl, 1) * 1000,
        now() + options.cacheTtlMs,
      );
      return {
        kind: 'key',
        source: 'smimea',
        certificate: new Uint8Array(usable.certificate.raw),
        provenance: `DNSSEC-validated SMIMEA ${record.usage} ${record.selector} ${record.matchingType} at ${owner}`,
        validUntil: new Date(expires),
        requireEncryption: false,
      };
    }
    return miss(reasons.join('; '));
  };

  return {
    name: 'smimea',
    async lookup(address) {
      const cached = cache.get(address);
      if (cached !== undefined && cached.validUntil.getTime() > now()) return cached;
      cache.delete(address);
      const answer = await ask(address);
      cache.set(address, answer);
      while (cache.size > maxEntries) {
        const oldest = cache.keys().next().value;
        if (oldest === undefined) break;
        cache.delete(oldest);
      }
      return answer;
    },
  };
}
