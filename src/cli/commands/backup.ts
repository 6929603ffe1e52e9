/**
 * Operator commands `backup <dir>` and `restore <dir>` (docs/operations.md, "Backup and
 * restore").
 */
import type { Command } from 'commander';
import { backupGateway } from '../operator/backup.js';
import { resolveOperatorContext } from '../operator/context.js';
import { restoreGateway } from '../operator/restore.js';
import { print } from '../output.js';

const CONFIG_HELP = 'gateway config file (default ./recrypt.yaml if present, else the defaults)';

export function register(program: Command): void {
  program
    .command('backup <dir>')
    .description(
      'operator: copy the key store, gateway key, tokens, TLS, config and embedded mail into a new directory (safe while the gateway runs)',
    )
    .option('--config <file>', CONFIG_HELP)
    .action(async (dir: string, opts: { config?: string }) => {
      const { dir: written, manifest } = await backupGateway(
        resolveOperatorContext(opts.config),
        dir,
      );
      const bytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
      print(`backup written to ${written}: ${manifest.files.length} file(s), ${bytes} bytes`);
      for (const what of manifest.notIncluded) print(`not included: ${what}`);
      for (const what of manifest.skipped) print(`skipped: ${what}`);
    });

  program
    .command('restore <dir>')
    .description(
      'operator: restore a backup into the (new or empty) data directory the config names; the gateway must be stopped',
    )
    .requiredOption(
      '--config <file>',
      'config of the gateway to restore (names the data directory)',
    )
    .action(async (dir: string, opts: { config: string }) => {
      const report = await restoreGateway(resolveOperatorContext(opts.config), dir);
      print(`restored ${report.restored} file(s) into ${report.dataDir}`);
      for (const note of report.notes) print(note);
    });
}
