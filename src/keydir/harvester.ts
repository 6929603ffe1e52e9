/**
 * Harvesting (docs/sending.md "Harvested certificates"): after the MX has stored a
 * message, the signer certificate of an S/MIME signature on it is verified and, when it
 * passes, kept in the key directory for submission to encrypt to later.
 *
 * The MX path never waits for it: `offer` reads the header, copies a signed message (in
 * memory only; the MX has already encrypted and stored it) and returns; the signature is
 * found and verified afterwards, at most `maxPending` at a time (more are dropped), each
 * abandoned after `timeoutMs`. What is harvested, and only if everything holds:
 *
 * * the signature verifies (signature-verify.ts) over the content that came;
 * * the message has exactly one From address, in a domain not served here, and — unless
 *   `requireDmarcPass` is off — the MX's own DMARC check passed for that domain (a
 *   stranger cannot plant a key for someone else's address by signing with their own);
 * * the certificate names that address, is valid now and can encrypt (certificate-checks.ts).
 */
import type { Logger } from 'pino';
import { checkSignerCertificate } from './certificate-checks.js';
import {
  findSignature,
  looksSigned,
  type SignatureLimits,
  type SignedMessage,
} from './signed-mail.js';
import { domainOfAddress, type KeyDirectory } from './types.js';
import { verifySignedData } from './verify-signature.js';

export interface HarvestSettings extends SignatureLimits {
  maxPerAddress: number;
  timeoutMs: number;
  maxPending: number;
  requireDmarcPass: boolean;
}

export type HarvestOutcome =
  { harvested: true; address: string; fingerprint: string } | { harvested: false; reason: string };

export interface Harvester {
  /** Looks at a stored message later; copies what it needs now, never throws or waits. */
  offer(message: Uint8Array, authenticationResults: string): void;
  /** The same, awaited (tests, and `offer`'s work). */
  harvest(message: Uint8Array, authenticationResults: string): Promise<HarvestOutcome>;
  /** Resolves once every offered message has been looked at. */
  idle(): Promise<void>;
}

/** What happened to one offered message, for the metrics (gateway.ts). */
export type HarvestResult = 'harvested' | 'not_harvested' | 'unsigned' | 'skipped_busy';

export interface HarvesterOptions {
  directory: KeyDirectory;
  /** Called once per offered message with what came of it. */
  onResult?(result: HarvestResult): void;
  settings: HarvestSettings;
  /** Domains served here: their users' keys are group keys, never harvested. */
  isLocalDomain(domain: string): boolean;
  logger?: Logger;
  now?: () => Date;
}

/** `dmarc=pass` for `domain` in the MX's own Authentication-Results (trace-headers.ts). */
export function dmarcPassed(authenticationResults: string, domain: string): boolean {
  for (const match of authenticationResults.matchAll(/\bdmarc=(\w+)([^;]*)/gi)) {
    const from = /header\.from=([^\s;]+)/i.exec(match[2] ?? '')?.[1]?.toLowerCase();
    if (match[1]!.toLowerCase() === 'pass' && from === domain) return true;
  }
  return false;
}

function withTimeout<T>(task: Promise<T>, ms: number, onTimeout: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), ms);
  });
  return Promise.race([task, timeout]).finally(() => clearTimeout(timer));
}

interface Prepared {
  signed: SignedMessage;
  address: string;
  domain: string;
}
interface Skipped {
  reason: string;
}

export function createHarvester(options: HarvesterOptions): Harvester {
  const { settings } = options;
  const now = options.now ?? (() => new Date());
  const pending = new Set<Promise<unknown>>();

  /** The synchronous part: everything needed is copied out of `message` before it returns. */
  const prepare = (message: Uint8Array, authenticationResults: string): Prepared | Skipped => {
    const signed = findSignature(message, settings);
    if (signed === null) return { reason: 'no S/MIME signature' };
    if (signed.from.length !== 1) return { reason: 'not exactly one From address' };
    const address = signed.from[0]!;
    const domain = domainOfAddress(address);
    if (options.isLocalDomain(domain)) return { reason: 'a local address' };
    if (settings.requireDmarcPass && !dmarcPassed(authenticationResults, domain))
      return { reason: 'DMARC did not pass for the From domain' };
    return { signed, address, domain };
  };

  const verifyAndStore = async (prepared: Prepared): Promise<HarvestOutcome> => {
    const { signed, address, domain } = prepared;
    const verified = await withTimeout(
      verifySignedData(signed.signature, signed.kind === 'detached' ? signed.content : undefined),
      settings.timeoutMs,
      { reason: 'verification took too long' },
    );
    if ('reason' in verified) return { harvested: false, reason: verified.reason };
    const at = now();
    const usable = checkSignerCertificate(verified.parsed, verified.certificate, address, at);
    if ('reason' in usable) return { harvested: false, reason: usable.reason };
    await options.directory.remember(
      {
        address,
        domain,
        fingerprint: usable.fingerprint,
        der: verified.certificate,
        keyType: usable.keyType,
        notBefore: usable.notBefore,
        notAfter: usable.notAfter,
        seenAt: at,
        ...(usable.keyType === 'rsa' && verified.rsaKeyTransport !== undefined
          ? { rsaKeyTransport: verified.rsaKeyTransport }
          : {}),
      },
      settings.maxPerAddress,
    );
    return { harvested: true, address, fingerprint: usable.fingerprint };
  };

  const logged = (outcome: HarvestOutcome, domain?: string): HarvestOutcome => {
    options.onResult?.(
      outcome.harvested
        ? 'harvested'
        : outcome.reason === 'no S/MIME signature'
          ? 'unsigned'
          : 'not_harvested',
    );
    if (outcome.harvested)
      options.logger?.info({ domain, fingerprint: outcome.fingerprint }, 'certificate harvested');
    else if (outcome.reason !== 'no S/MIME signature')
      options.logger?.info({ domain, reason: outcome.reason }, 'signed mail: nothing harvested');
    return outcome;
  };

  const run = (message: Uint8Array, authenticationResults: string): Promise<HarvestOutcome> => {
    let prepared;
    try {
      prepared = prepare(message, authenticationResults);
    } catch {
      return Promise.resolve(logged({ harvested: false, reason: 'unreadable message' }));
    }
    if (!('signed' in prepared))
      return Promise.resolve(logged({ harvested: false, reason: prepared.reason }));
    const domain = prepared.domain;
    return verifyAndStore(prepared).then(
      (outcome) => logged(outcome, domain),
      (error: unknown) =>
        logged(
          {
            harvested: false,
            reason: `key directory unavailable (${(error as Error).name})`,
          },
          domain,
        ),
    );
  };

  return {
    offer(message, authenticationResults) {
      // Only the header is read before the MX replies; a signed message is copied (memory
      // only: the MX reuses its buffer) and looked at on a later turn of the event loop.
      if (!looksSigned(message, settings)) {
        options.onResult?.('unsigned');
        return;
      }
      if (pending.size >= settings.maxPending) {
        options.onResult?.('skipped_busy');
        options.logger?.warn('harvesting busy: a signed message was not looked at');
        return;
      }
      const copy = Buffer.from(message);
      const task = new Promise((resolve) => setImmediate(resolve)).then(() =>
        run(copy, authenticationResults),
      );
      pending.add(task);
      void task.finally(() => pending.delete(task));
    },
    harvest: run,
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
