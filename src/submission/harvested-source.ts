/**
 * The key source for certificates harvested from signed mail (src/keydir, docs/sending.md
 * "Harvested certificates"): the most recently seen certificate of the address that is
 * valid now. Its provenance says when signed mail last showed it; it is used until the
 * certificate expires. RSA certificates carry the key transport their owner's client
 * announced (PKCS#1 v1.5 when it announced none).
 */
import type { KeyDirectory } from '../keydir/types.js';
import type { KeySource } from './key-sources.js';

const MISS_RETRY_MS = 60_000;

export function harvestedKeySource(
  directory: KeyDirectory,
  now: () => number = Date.now,
): KeySource {
  return {
    name: 'harvested',
    async lookup(address) {
      const at = now();
      let records;
      try {
        records = await directory.forAddress(address);
      } catch {
        return {
          kind: 'none',
          reason: 'key directory unavailable',
          validUntil: new Date(at + MISS_RETRY_MS),
        };
      }
      const usable = records.find((r) => r.notBefore.getTime() <= at && r.notAfter.getTime() > at);
      if (usable === undefined)
        return {
          kind: 'none',
          reason:
            records.length === 0
              ? 'no certificate seen on signed mail'
              : 'every harvested certificate has expired',
          validUntil: new Date(at + MISS_RETRY_MS),
        };
      return {
        kind: 'key',
        source: 'harvested',
        certificate: usable.der,
        provenance: `signed mail seen ${usable.seenAt.toISOString()}, certificate sha256 ${usable.fingerprint}`,
        validUntil: usable.notAfter,
        requireEncryption: false,
        ...(usable.keyType === 'rsa'
          ? { rsaKeyTransport: usable.rsaKeyTransport ?? 'rsa-pkcs1' }
          : {}),
      };
    },
  };
}
