/**
 * Operator commands (on the gateway machine): `init`, `user add|list|token|remove`,
 * `queue list|flush`, `config check`.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { DEFAULT_CONFIG_FILE, resolveOperatorContext } from '../operator/context.js';
import { initGateway } from '../operator/init.js';
import { listQueue, requestFlush } from '../operator/queue.js';
import { addUser, listUsers, newToken, removeUser } from '../operator/users.js';
import { print } from '../output.js';

const CONFIG_HELP = `gateway config file (default ./${DEFAULT_CONFIG_FILE} if present, else the defaults)`;

export function register(program: Command): void {
  program
    .command('init')
    .description(
      'create the data directory, config file, TLS certificate, admin token and gateway key (keeps what exists)',
    )
    .option('--data-dir <dir>', 'data directory (default: ./data beside the config file)')
    .option('--config <file>', 'config file to create or keep', DEFAULT_CONFIG_FILE)
    .action(async (opts: { dataDir?: string; config: string }) => {
      const report = await initGateway({
        configFile: opts.config,
        ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
      });
      for (const line of report.lines) print(line);
    });

  const user = program.command('user').description("operator: manage the gateway's accounts");
  user
    .command('add <address>')
    .description('create an account and print its one-time enrolment token')
    .option('--name <name>', 'display name')
    .option('--public-url <url>', 'the admin API URL owners use (default from the config)')
    .option('--config <file>', CONFIG_HELP)
    .action(
      async (address: string, opts: { name?: string; publicUrl?: string; config?: string }) => {
        const added = await addUser(resolveOperatorContext(opts.config), {
          address,
          ...(opts.name !== undefined ? { name: opts.name } : {}),
          ...(opts.publicUrl !== undefined ? { publicUrl: opts.publicUrl } : {}),
        });
        print(`added ${added.address} (pending enrolment)`);
        print(
          `enrolment token (one use, valid until ${added.tokenExpires}): ${added.enrolmentToken}`,
        );
        print('the owner runs, on their own machine:');
        print(`  ${added.ownerCommand}`);
        if (added.certFile !== null) print(`with gateway-cert.pem a copy of ${added.certFile}`);
        if (added.loopbackNote !== null) print(added.loopbackNote);
      },
    );
  user
    .command('list')
    .description('list accounts')
    .option('--config <file>', CONFIG_HELP)
    .action(async (opts: { config?: string }) => {
      const users = await listUsers(resolveOperatorContext(opts.config));
      if (users.length === 0) print('no users');
      for (const u of users) {
        print(`${u.address}\t${u.enrolment}\t${u.activeDevices ?? 0} device(s)\t${u.name}`);
      }
    });
  user
    .command('token <address>')
    .description(
      'print a new enrolment token; an enrolled account needs --reset, which revokes all its devices',
    )
    .option('--reset', 'reset an enrolled account: revoke every device, then enrol anew')
    .option('--public-url <url>', 'the admin API URL owners use (default from the config)')
    .option('--config <file>', CONFIG_HELP)
    .action(
      async (address: string, opts: { reset?: boolean; publicUrl?: string; config?: string }) => {
        const issued = await newToken(resolveOperatorContext(opts.config), {
          address,
          reset: opts.reset === true,
          ...(opts.publicUrl !== undefined ? { publicUrl: opts.publicUrl } : {}),
        });
        if (opts.reset === true) {
          print(
            `reset ${issued.address}: ${issued.revokedDevices} device(s) revoked, enrolment open`,
          );
        }
        print(
          `enrolment token (one use, valid until ${issued.tokenExpires}): ${issued.enrolmentToken}`,
        );
        print('the owner runs, on their own machine:');
        print(`  ${issued.ownerCommand}`);
        if (issued.certFile !== null) print(`with gateway-cert.pem a copy of ${issued.certFile}`);
        if (issued.loopbackNote !== null) print(issued.loopbackNote);
      },
    );
  user
    .command('remove <address>')
    .description('delete an account with its devices, keys and profile')
    .option('--config <file>', CONFIG_HELP)
    .action(async (address: string, opts: { config?: string }) => {
      await removeUser(resolveOperatorContext(opts.config), address);
      print(`removed ${address}`);
    });

  const queue = program
    .command('queue')
    .description('operator: the outbound queue (remote list members, notices, bounce reports)');
  queue
    .command('list')
    .description('the messages waiting: id, recipient, attempts, next attempt, last reply')
    .option('--config <file>', CONFIG_HELP)
    .action(async (opts: { config?: string }) => {
      const { where, jobs, unreadable } = await listQueue(resolveOperatorContext(opts.config));
      if (where === 'redis')
        print(`shared outbound queue (Redis, every gateway process): ${jobs.length} job(s)`);
      if (jobs.length === 0 && unreadable.length === 0) print('the outbound queue is empty');
      for (const job of jobs) {
        const from = job.mailFrom === '' ? '<>' : job.mailFrom;
        const next = new Date(job.nextAttempt).toISOString();
        const last = job.lastError === undefined ? '' : `\t${job.lastError}`;
        print(
          `${job.id}\t${job.to}\tfrom ${from}\t${job.attempts} attempt(s)\tnext ${next}${last}`,
        );
      }
      for (const entry of unreadable) print(`${entry.id}\tunreadable: ${entry.reason}`);
    });
  queue
    .command('flush')
    .description('ask the running gateway to retry every waiting message now (within a minute)')
    .option('--config <file>', CONFIG_HELP)
    .action(async (opts: { config?: string }) => {
      print(`flush requested (${await requestFlush(resolveOperatorContext(opts.config))})`);
    });

  program
    .command('config')
    .description('configuration tools')
    .command('check <file>')
    .description('validate a config file: prints each problem with its line, or "ok"')
    .action((file: string) => {
      loadConfig(file);
      print('ok');
    });
}
