/**
 * `recrypt start`: runs the whole gateway until SIGTERM/SIGINT (a second one exits at
 * once); SIGHUP reloads TLS. With `processes` > 1 this is the primary (or, forked by it,
 * a worker: src/gateway/cluster-worker.ts). A failure to start is one line naming the
 * problem (which option, which address) and exit code 1, never a stack trace.
 */
import cluster from 'node:cluster';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load.js';
import { createLogger } from '../../config/logger.js';
import {
  processCount,
  startGatewayProcesses,
  type GatewayProcesses,
} from '../../gateway/cluster-primary.js';
import { runClusterWorker } from '../../gateway/cluster-worker.js';
import { describeStartupError } from '../../gateway/startup-errors.js';
import { CliError } from '../errors.js';
import { DEFAULT_CONFIG_FILE, findConfigFile } from '../operator/context.js';

export function register(program: Command): void {
  program
    .command('start')
    .description(
      'run the gateway: MX, IMAP proxy, admin/profile HTTPS and (unless Dovecot is configured) the embedded store',
    )
    .option(
      '--config <file>',
      `gateway config file (default ./${DEFAULT_CONFIG_FILE} if present, else the defaults)`,
    )
    .action(async (opts: { config?: string }) => {
      // A worker of `processes` > 1 takes its config from the primary, not from the file.
      if (cluster.isWorker) return runClusterWorker();
      const { config } = loadConfig(findConfigFile(opts.config));
      // Several processes share stdout: each names itself in every line.
      const root = createLogger(config.logLevel);
      const logger = processCount(config) > 1 ? root.child({ process: 'primary' }) : root;
      let gateway: GatewayProcesses;
      try {
        gateway = await startGatewayProcesses(config, logger);
      } catch (error) {
        if (error instanceof ConfigError) throw error;
        throw new CliError(describeStartupError(error, config));
      }
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
            logger.error({ err: (error as Error).message }, 'error while stopping');
            resolve();
          });
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        process.on('SIGHUP', () => {
          gateway.reloadTls().catch((error: unknown) => {
            logger.error(
              { err: (error as Error).message },
              'TLS reload failed; keeping the old certificate',
            );
          });
        });
      });
      logger.info('stopped');
    });
}
