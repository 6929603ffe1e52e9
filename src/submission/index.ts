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
import type { KeyStore } from '../keystore/index.js';
import type { OutboundQueue } from '../outbound/index.js';
import type { DeliveryTarget, RecipientDirectory } from '../smtp/ports.js';
import { keyDiscovery } from './discovery.js';
import { sentCopies } from './sent-copy.js';
import { startSubmissionServer, type SubmissionServer } from './server.js';

export { keyDiscovery, type Discovered, type KeyDiscovery } from './discovery.js';
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
}

/** The discovery `recrypt lookup` and the server share: config → KeyDiscovery. */
export function discoveryFromConfig(
  config: SubmissionConfig,
  inData: (path: string) => string,
  logger?: Logger,
) {
  const caFile = config.discovery.caFile;
  return keyDiscovery({
    origins: config.discovery.origins,
    ...(caFile === undefined ? {} : { ca: readFileSync(inData(caFile), 'utf8') }),
    cacheTtlMs: config.discovery.cacheTtl,
    timeoutMs: config.discovery.timeout,
    ...(logger === undefined ? {} : { logger }),
  });
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
    discovery: discoveryFromConfig(config, parts.inData, parts.logger),
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
