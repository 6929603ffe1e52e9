/**
 * `recrypt keys list [domain]` and `recrypt keys remove <address> [fingerprint]`
 * (operator, on the gateway machine): the directory of certificates the MX harvested
 * from S/MIME-signed mail (docs/sending.md "Harvested certificates"), read from the store
 * the running gateway uses (SQLite in the data directory, or the key store's Redis).
 */
import type { Command } from 'commander';
import { openKeyDirectory } from '../../keydir/open.js';
import type { HarvestedCertificate, KeyDirectory } from '../../keydir/types.js';
import { resolveOperatorContext } from '../operator/context.js';
import { print } from '../output.js';

async function withDirectory<T>(
  configFile: string | undefined,
  use: (directory: KeyDirectory) => Promise<T>,
): Promise<T> {
  const context = resolveOperatorContext(configFile);
  const directory = await openKeyDirectory(context.config.keyStore, context.dataDir);
  try {
    return await use(directory);
  } finally {
    await directory.close();
  }
}

function describe(record: HarvestedCertificate, now: number): string {
  const state =
    record.notAfter.getTime() <= now
      ? 'EXPIRED'
      : record.notBefore.getTime() > now
        ? 'not yet valid'
        : 'valid';
  const transport = record.keyType === 'rsa' ? ` ${record.rsaKeyTransport ?? 'rsa-pkcs1'}` : '';
  return (
    `${record.address}  ${record.keyType}${transport}  ${state} until ${record.notAfter.toISOString()}` +
    `  seen ${record.seenAt.toISOString()}  sha256 ${record.fingerprint}`
  );
}

export function register(program: Command): void {
  const keys = program
    .command('keys')
    .description('operator: certificates harvested from signed mail (submission encrypts to them)');
  keys
    .command('list [domain]')
    .description('list the harvested certificates, of one domain or of all')
    .option('--config <file>', 'gateway config file (default ./recrypt.yaml if present)')
    .action(async (domain: string | undefined, opts: { config?: string }) => {
      await withDirectory(opts.config, async (directory) => {
        const records = await directory.list(domain);
        const now = Date.now();
        for (const record of records) print(describe(record, now));
        print(
          `${records.length} certificate${records.length === 1 ? '' : 's'}` +
            (domain === undefined ? '' : ` for ${domain.toLowerCase()}`),
        );
      });
    });
  keys
    .command('remove <address> [fingerprint]')
    .description("forget an address's harvested certificates (or the one with that SHA-256)")
    .option('--config <file>', 'gateway config file (default ./recrypt.yaml if present)')
    .action(async (address: string, fingerprint: string | undefined, opts: { config?: string }) => {
      await withDirectory(opts.config, async (directory) => {
        const removed = await directory.remove(address, fingerprint);
        print(`removed ${removed} certificate${removed === 1 ? '' : 's'}`);
      });
    });
}
