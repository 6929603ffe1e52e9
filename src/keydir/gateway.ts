/**
 * Harvesting as `recrypt start` runs it (docs/sending.md "Harvested certificates"): on
 * when submission is configured and `submission.harvest.enabled`; the MX's `onStored`
 * hook offers each stored message to the harvester, and submission reads the same
 * directory as its fourth key source.
 */
import { domainToASCII } from 'node:url';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import { createHarvester } from './harvester.js';
import { openKeyDirectory } from './open.js';
import type { KeyDirectory } from './types.js';

export interface Harvesting {
  /** For submission's key sources; undefined when harvesting is off. */
  directory?: KeyDirectory;
  /** For the MX (mx-server.ts `onStored`); undefined when harvesting is off. */
  onStored?(message: Uint8Array, traceHeaders: string): void;
  /** Waits for verifications in flight, then closes the directory. */
  close(): Promise<void>;
}

export async function startHarvesting(
  config: GatewayConfig,
  logger: Logger,
  metrics?: Registry,
): Promise<Harvesting> {
  const settings = config.submission?.harvest;
  if (settings === undefined || !settings.enabled) return { close: () => Promise.resolve() };
  const directory = await openKeyDirectory(config.keyStore, config.dataDir, (error) =>
    logger.warn({ err: error.message }, 'key directory connection problem'),
  );
  const results = new Counter({
    name: 'recrypt_harvest_messages_total',
    help: 'Stored messages offered for harvesting, by result (harvested, not_harvested: signed but a check failed, unsigned, skipped_busy)',
    labelNames: ['result'],
    registers: metrics === undefined ? [] : [metrics],
  });
  const local = new Set(config.smtp.localDomains.map((d) => domainToASCII(d.toLowerCase())));
  const harvester = createHarvester({
    directory,
    settings: {
      maxPerAddress: settings.maxPerAddress,
      maxMessageBytes: settings.maxMessageBytes,
      maxSignatureBytes: settings.maxSignatureBytes,
      timeoutMs: settings.timeout,
      maxPending: settings.maxPending,
      requireDmarcPass: settings.requireDmarcPass,
    },
    isLocalDomain: (domain) => local.has(domainToASCII(domain)),
    onResult: (result) => results.inc({ result }),
    logger,
  });
  return {
    directory,
    onStored: (message, traceHeaders) => harvester.offer(message, traceHeaders),
    async close() {
      await harvester.idle();
      await directory.close();
    },
  };
}
