/**
 * Where submission finds a key for a recipient on another server (docs/sending.md "Which
 * key"). Each source is one object with one function: the address in, a certificate with
 * its provenance and expiry out, or "none" with the reason. A source never throws (a
 * failure is "none", with why), and it never weakens another's answer: `keySources`
 * asks them in the configured order and the first key wins.
 *
 * The order routing.ts uses: the published profile (discovery.ts), an SMIMEA record
 * (DNSSEC-validated), a certificate harvested from signed mail (harvested-source.ts). A
 * new source is one more `KeySource` in that list; nothing else changes.
 */

/** How the content key is given to an RSA recipient (docs/sending.md "RSA recipients"). */
export type RsaKeyTransport = 'rsa-pkcs1' | 'rsa-oaep-sha1' | 'rsa-oaep-sha256';

export type KeySourceName = 'profile' | 'smimea' | 'harvested';

export interface FoundKey {
  kind: 'key';
  source: KeySourceName;
  /** DER of the recipient's certificate (a P-256 group or S/MIME certificate, or RSA). */
  certificate: Uint8Array;
  /** Where it came from, for logs and `recrypt lookup`: a URL, a DNS name, "signed mail of …". */
  provenance: string;
  /** Used until then (cache, document and certificate expiry, whichever is first). */
  validUntil: Date;
  /** The recipient asks senders to encrypt (a profile's `require`). */
  requireEncryption: boolean;
  /** The owner's UDF fingerprint, when the source names one (a profile). */
  udf?: string;
  /** For an RSA certificate: the key transport its owner's client reads (default PKCS#1 v1.5). */
  rsaKeyTransport?: RsaKeyTransport;
}

export interface NoKey {
  kind: 'none';
  /** Why no key: for logs, `recrypt lookup` and the refusal text. Never a secret. */
  reason: string;
  validUntil: Date;
  /**
   * A source that could verify the recipient's wishes but found no usable key (a signed
   * profile that requires encryption, its certificate expired): the message is refused
   * whatever `withoutKey` says.
   */
  requireEncryption?: boolean;
}

export type KeyAnswer = FoundKey | NoKey;

export interface KeySource {
  readonly name: KeySourceName;
  /** The key for `address` (lower-case), or why there is none. Never throws. */
  lookup(address: string): Promise<KeyAnswer>;
}

/** Several sources asked as one, in order (routing.ts and `recrypt lookup` use this). */
export interface KeyDiscovery {
  lookup(address: string): Promise<KeyAnswer>;
}

/**
 * The first key any source finds, in the order given; without one, "none" with every
 * source's reason, requiring encryption when any source said the recipient requires it.
 */
export function keySources(
  sources: readonly KeySource[],
  now: () => number = Date.now,
): KeyDiscovery {
  return {
    async lookup(raw) {
      const address = raw.trim().toLowerCase();
      const misses: NoKey[] = [];
      for (const source of sources) {
        let answer: KeyAnswer;
        try {
          answer = await source.lookup(address);
        } catch {
          answer = { kind: 'none', reason: 'lookup failed', validUntil: new Date(now()) };
        }
        if (answer.kind === 'key') return answer;
        // Each source's reasons name it ("profile rejected: …", "no certificate seen on signed mail").
        misses.push(answer);
      }
      return {
        kind: 'none',
        reason: misses.length === 0 ? 'no key source' : misses.map((m) => m.reason).join('; '),
        validUntil: new Date(
          misses.length === 0 ? now() : Math.min(...misses.map((m) => m.validUntil.getTime())),
        ),
        ...(misses.some((m) => m.requireEncryption === true) ? { requireEncryption: true } : {}),
      };
    },
  };
}
