/**
 * `recrypt lookup <address>` (operator, on the gateway machine): which key submission
 * would encrypt to for this recipient, where it came from and until when it is used
 * (docs/sending.md). Reads the key store and the harvested key directory and fetches
 * published profiles the way the running gateway does; needs a `submission` section for the discovery settings (the
 * defaults otherwise).
 */
import type { Command } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { configSchema } from '../../config/schema.js';
import { openKeyDirectory } from '../../keydir/open.js';
import { loadOrCreateGatewayKey, openKeyStore } from '../../keystore/index.js';
import { discoveryFromConfig } from '../../submission/index.js';
import { lookupRecipient } from '../../submission/lookup.js';
import { resolveOperatorContext } from '../operator/context.js';
import { print } from '../output.js';

export function register(program: Command): void {
  program
    .command('lookup <address>')
    .description('operator: what sending to <address> would do: which key, from where, valid until')
    .option('--from <sender>', "as sent by this user: their own profile's policy counts too")
    .option('--config <file>', 'gateway config file (default ./recrypt.yaml if present)')
    .action(async (address: string, opts: { config?: string; from?: string }) => {
      const context = resolveOperatorContext(opts.config);
      const config = context.config;
      const submission = config.submission ?? configSchema.parse({ submission: {} }).submission!;
      const inData = (path: string) => (isAbsolute(path) ? path : resolve(context.dataDir, path));
      const keyStore = await openKeyStore(config.keyStore, {
        gatewayKey: loadOrCreateGatewayKey(context.dataDir),
        dataDir: context.dataDir,
      });
      const keyDirectory = await openKeyDirectory(config.keyStore, context.dataDir).catch(
        async (error: unknown) => {
          await keyStore.close();
          throw error;
        },
      );
      try {
        const answer = await lookupRecipient(
          {
            keyStore,
            localDomains: config.smtp.localDomains,
            discovery: discoveryFromConfig(submission, inData, { keyDirectory }),
            withoutKey: submission.withoutKey,
            ...(opts.from === undefined ? {} : { sender: opts.from }),
          },
          address,
        );
        const verb =
          answer.action === 'encrypt'
            ? 'encrypted'
            : answer.action === 'send-plain'
              ? 'sent WITHOUT encryption (no key)'
              : 'refused (not sent)';
        print(`${answer.address}: ${verb}`);
        print(`  key: ${answer.source === 'none' ? 'none' : answer.source}`);
        print(`  from: ${answer.detail}`);
        if (answer.udf !== undefined) print(`  owner udf: ${answer.udf}`);
        if (answer.rsaKeyTransport !== undefined)
          print(`  key transport: ${answer.rsaKeyTransport}`);
        if (answer.validUntil !== undefined)
          print(`  valid until: ${answer.validUntil.toISOString()}`);
      } finally {
        await keyDirectory.close();
        await keyStore.close();
      }
    });
}
