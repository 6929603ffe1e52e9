/** `recrypt start`: runs the whole gateway until SIGTERM/SIGINT; SIGHUP reloads TLS. */
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../config/logger.js';
import { startGateway } from '../../gateway/start.js';
import { DEFAULT_CONFIG_FILE, findConfigFile } from '../operator/context.js';

export function register(program: Command): void {
  program
    .command('start')
    .description('run the gateway: MX, IMAP proxy, admin/profile HTTPS and (unless Dovecot is configured) the embedded store')
    .option('--config <file>', `gateway config file (default ./${DEFAULT_CONFIG_FILE} if present, else the defaults)`)
    .action(async (opts: { config?: string }) => {
      const { config } = loadConfig(findConfigFile(opts.config));
      const logger = createLogger(config.logLevel);
      const gateway = await startGateway(config, logger);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            logger.warn({ signal }, 'second signal: exiting at once');
            process.exit(1);
          }
          stopping = true;
          logger.info({ signal }, 'stopping: finishing transactions and fetches in flight');
          void gateway.close().then(resolve, (error: unknown) => {
            logger.error({ err: error }, 'error while stopping');
            resolve();
          });
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        process.on('SIGHUP', () => {
          gateway.reloadTls().catch((error: unknown) => {
            logger.error({ err: (error as Error).message }, 'TLS reload failed; keeping the old certificate');
          });
        });
      });
      logger.info('stopped');
    });
}
