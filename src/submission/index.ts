/**
 * src/submission — sending (docs/sending.md): authenticated submission that encrypts to
 * every recipient whose key is found and keeps an encrypted Sent copy. `startSubmission`
 * builds it from the gateway's config and the parts start.ts already has.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { RateLimiter } from '../admin/rate-limit.js';
import type { SubmissionConfig } from '../config/schema.js';
import type { SharedLoginFailures } from '../imap/throttle.js';
import { keyStoreDirectory as deviceDirectory } from '../imap/adapters/keystore-directory.js';
import type { UpstreamOptions } from '../imap/upstream.js';
import { validatingResolver } from '../dns/index.js';
import { StartupError } from '../gateway/startup-errors.js';
import type { KeyStore } from '../keystore/index.js';
import type { OutboundQueue } from '../outbound/index.js';
import type { DeliveryTarget, RecipientDirectory } from '../smtp/ports.js';
import type { KeyDirectory } from '../keydir/types.js';
import { keyDiscovery } from './discovery.js';
import { harvestedKeySource } from './harvested-source.js';
import { keySources, type KeyDiscovery, type KeySource } from './key-sources.js';
import { sentCopies } from './sent-copy.js';
import { smimeaSource } from './smimea-source.js';
import { startSubmissionServer, type SubmissionServer } from './server.js';

export { keyDiscovery, type Discovered } from './discovery.js';
export {
  keySources,
  type FoundKey,
  type KeyAnswer,
  type KeyDiscovery,
  type KeySource,
  type NoKey,
} from './key-sources.js';
export { startSubmissionServer, type SubmissionServer } from './server.js';

export interface SubmissionParts {
  config: SubmissionConfig;
  /** Resolves relative paths (the CA file) against the data directory. */
  inData(path: string): string;
  hostname: string;
  tls: { key: string | Buffer; cert: string | Buffer };
  keyStore: KeyStore;
  directory: RecipientDirectory;
  delivery: DeliveryTarget;
  queue: OutboundQueue;
  store: { imap: UpstreamOptions; master: { user: string; password: string } };
  hideSubject: boolean;
  logger: Logger;
  /** Login failures counted with every process's (the proxy's counts: one backoff per account). */
  loginFailures?: SharedLoginFailures;
  /** The per-user sending rate, shared by every process. */
  rateLimiter?: RateLimiter;
  /** Certificates harvested from signed mail (src/keydir); without it that source is off. */
  keyDirectory?: KeyDirectory;
}

/**
 * The key sources `recrypt lookup` and the server share, in routing order (routing.ts):
 * the published profile, a DNSSEC-validated SMIMEA record (`submission.smimea`), then
 * certificates harvested from signed mail. Another source goes into `extra`, before the
 * harvested one.
 */
export function discoveryFromConfig(
  config: SubmissionConfig,
  inData: (path: string) => string,
  options: { logger?: Logger; keyDirectory?: KeyDirectory; extra?: KeySource[] } = {},
): KeyDiscovery {
  const caFile = config.discovery.caFile;
  const profile = keyDiscovery({
    origins: config.discovery.origins,
    ...(caFile === undefined ? {} : { ca: readFileSync(inData(caFile), 'utf8') }),
    cacheTtlMs: config.discovery.cacheTtl,
    timeoutMs: config.discovery.timeout,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const smimea = config.smimea;
  return keySources([
    profile,
    ...(smimea.enabled
      ? [
          smimeaSource({
            resolver: smimeaResolver(smimea),
            cacheTtlMs: smimea.cacheTtl,
            ...(options.logger === undefined ? {} : { logger: options.logger }),
          }),
        ]
      : []),
    ...(options.extra ?? []),
    ...(options.keyDirectory === undefined || !config.harvest.enabled
      ? []
      : [harvestedKeySource(options.keyDirectory)]),
  ]);
}

/** The validating resolver SMIMEA answers come from; a start-up error names the option. */
function smimeaResolver(smimea: SubmissionConfig['smimea']) {
  try {
    return validatingResolver({ resolver: smimea.resolver, timeoutMs: smimea.timeout });
  } catch (error) {
    throw new StartupError(`submission.smimea: ${(error as Error).message}`);
  }
}

export function startSubmission(parts: SubmissionParts): Promise<SubmissionServer> {
  const { config } = parts;
  return startSubmissionServer({
    host: config.host,
    port: config.port,
    tlsPort: config.tlsPort,
    tls: parts.tls,
    hostname: parts.hostname,
    maxSize: config.maxMessageBytes,
    maxRecipients: config.maxRecipients,
    rateLimit: config.rateLimit,
    withoutKey: config.withoutKey,
    hideSubject: parts.hideSubject,
    devices: deviceDirectory(parts.keyStore),
    directory: parts.directory,
    lists: parts.keyStore,
    profiles: parts.keyStore,
    discovery: discoveryFromConfig(config, parts.inData, {
      logger: parts.logger,
      ...(parts.keyDirectory === undefined ? {} : { keyDirectory: parts.keyDirectory }),
    }),
    delivery: parts.delivery,
    queue: parts.queue,
    sentCopies: config.sentCopy
      ? sentCopies({ upstream: parts.store.imap, master: parts.store.master })
      : null,
    logger: parts.logger,
    ...(parts.loginFailures === undefined ? {} : { loginFailures: parts.loginFailures }),
    ...(parts.rateLimiter === undefined ? {} : { rateLimiter: parts.rateLimiter }),
  });
}
