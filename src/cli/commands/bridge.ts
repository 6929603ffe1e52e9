/**
 * `recrypt bridge` (docs/bridge.md): on the person's computer, runs the device bridge
 * until SIGTERM/SIGINT. The first start takes the device's .p12 (from `device add` or
 * `device join`), the gateway's IMAP address and CA and the device's IMAP password, and
 * prints the local account's settings with its password, once; later starts need only
 * the bridge passphrase, and change the gateway settings given to them (docs/bridge.md).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readP12File, type AccountUpdate } from '../../bridge/account.js';
import { runBridge, type BridgeOptions } from '../../bridge/bridge.js';
import { appleMobileconfig, thunderbirdAutoconfig } from '../../bridge/client-config.js';
import { refuseDataDirInUse } from '../../bridge/data-dir-lock.js';
import { BridgeError } from '../../bridge/errors.js';
import { writeFileAtomic } from '../../config/atomic-file.js';
import { clientSettings } from '../../bridge/settings.js';
import { CliError } from '../errors.js';
import { P12_PASSWORD_ENV } from '../owner-context.js';
import { readSecret } from '../secrets.js';
import { systemKeyring } from '../../bridge/keyring.js';

const BRIDGE_PASSPHRASE_ENV = 'RECRYPT_BRIDGE_PASSPHRASE';
const DEVICE_PASSWORD_ENV = 'RECRYPT_DEVICE_PASSWORD';

interface BridgeCommandOptions {
  dataDir: string;
  passphraseFile?: string;
  p12?: string;
  p12PasswordFile?: string;
  address?: string;
  gateway?: string;
  gatewayStarttls?: boolean;
  ca?: string;
  devicePasswordFile?: string;
  submission?: string;
  submissionStarttls?: boolean;
  profileUrl?: string;
  imapPort: string;
  smtpPort: string;
  imapsPort: string;
  plain?: boolean;
  keyring?: boolean;
  poll: string;
  autoconfig?: string;
  mobileconfig?: string;
}

function port(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${option}: a port number`, 2);
  return n;
}

/** `host:port` (IPv6 in brackets), or `host` and the default port. */
function hostPort(
  value: string,
  option: string,
  defaultPort: number,
): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(value);
  if (match === null) throw new CliError(`${option}: host or host:port`, 2);
  return {
    host: match[1] ?? match[2]!,
    port: match[3] !== undefined ? port(match[3], option) : defaultPort,
  };
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read --ca ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/**
 * A later start's changes (docs/bridge.md, "Changing the settings"): the options given,
 * and the device password when `--device-password-file` or its variable is there.
 */
async function updateFrom(opts: BridgeCommandOptions): Promise<AccountUpdate | undefined> {
  const update: AccountUpdate = {};
  if (opts.gateway !== undefined) {
    const starttls = opts.gatewayStarttls === true;
    update.gateway = {
      ...hostPort(opts.gateway, '--gateway', starttls ? 143 : 993),
      tls: starttls ? 'starttls' : 'implicit',
    };
  }
  if (opts.submission !== undefined) {
    const starttls = opts.submissionStarttls === true;
    update.submission = {
      ...hostPort(opts.submission, '--submission', starttls ? 587 : 465),
      tls: starttls ? 'starttls' : 'implicit',
    };
  }
  if (opts.ca !== undefined) update.ca = readCa(opts.ca);
  if (opts.devicePasswordFile !== undefined || process.env[DEVICE_PASSWORD_ENV] !== undefined)
    update.password = await readSecret({
      what: 'device IMAP password',
      envName: DEVICE_PASSWORD_ENV,
      file: opts.devicePasswordFile,
    });
  return Object.keys(update).length > 0 ? update : undefined;
}

async function setupFrom(opts: BridgeCommandOptions): Promise<BridgeOptions['setup']> {
  if (opts.p12 === undefined) return undefined;
  if (opts.address === undefined || opts.gateway === undefined)
    throw new CliError('the first start needs --p12, --address and --gateway', 2);
  const starttls = opts.gatewayStarttls === true;
  const { host, port: gatewayPort } = hostPort(opts.gateway, '--gateway', starttls ? 143 : 993);
  const submissionStarttls = opts.submissionStarttls === true;
  const submission =
    opts.submission === undefined
      ? undefined
      : hostPort(opts.submission, '--submission', submissionStarttls ? 587 : 465);
  const ca = opts.ca !== undefined ? readCa(opts.ca) : undefined;
  const p12 = await asCliError(async () => readP12File(opts.p12!));
  const p12Password = await readSecret({
    what: '.p12 password',
    envName: P12_PASSWORD_ENV,
    file: opts.p12PasswordFile,
  });
  const password = await readSecret({
    what: 'device IMAP password',
    envName: DEVICE_PASSWORD_ENV,
    file: opts.devicePasswordFile,
  });
  return {
    p12,
    p12Password,
    address: opts.address,
    ...(opts.profileUrl !== undefined ? { profileUrl: profileOrigin(opts.profileUrl) } : {}),
    ...(submission !== undefined
      ? {
          submission: {
            ...submission,
            tls: submissionStarttls ? ('starttls' as const) : ('implicit' as const),
            ...(ca !== undefined ? { ca } : {}),
          },
        }
      : {}),
    upstream: {
      host,
      port: gatewayPort,
      tls: starttls ? 'starttls' : 'implicit',
      ...(ca !== undefined ? { ca } : {}),
      user: opts.address,
      password,
    },
  };
}

/** `--profile-url`: an https origin (the profile path is added by the bridge). */
function profileOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError('--profile-url: an https:// URL', 2);
  }
  if (url.protocol !== 'https:') throw new CliError('--profile-url: an https:// URL', 2);
  return url.origin;
}

/** A BridgeError's message is written for people: shown as the CLI's own one-line error. */
async function asCliError<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof BridgeError) throw new CliError(error.message);
    throw error;
  }
}

export function register(program: Command): void {
  program
    .command('bridge')
    .description(
      'on your computer: serve the gateway mailbox decrypted over IMAP on 127.0.0.1, for any mail client',
    )
    .option(
      '--data-dir <dir>',
      'the bridge account and its encrypted cache',
      join(homedir(), '.recrypt', 'bridge'),
    )
    .option(
      '--passphrase-file <file>',
      `read the bridge passphrase from this file (or set ${BRIDGE_PASSPHRASE_ENV}; default: prompt)`,
    )
    .option('--p12 <file>', "first start: the device's .p12 (from `device add` or `device join`)")
    .option(
      '--p12-password-file <file>',
      `first start: the .p12 password (or set ${P12_PASSWORD_ENV}; default: prompt)`,
    )
    .option('--address <address>', 'first start: the mailbox address (the IMAP user name)')
    .option(
      '--gateway <host[:port]>',
      "the gateway's IMAP proxy (port 993 by default); first start, or a later start changes it",
    )
    .option('--gateway-starttls', 'with --gateway: that port speaks STARTTLS (143) rather than TLS')
    .option(
      '--ca <file>',
      "the gateway's certificate or CA (PEM) when it is not publicly trusted (first start, or a change)",
    )
    .option(
      '--device-password-file <file>',
      `the device's IMAP password (or set ${DEVICE_PASSWORD_ENV}; first start: default prompt; later: changes it)`,
    )
    .option(
      '--submission <host[:port]>',
      "the gateway's submission service, for sending (port 465 by default); first start, or a change",
    )
    .option(
      '--submission-starttls',
      'with --submission: that port speaks STARTTLS (587) rather than TLS',
    )
    .option(
      '--profile-url <url>',
      "first start: where the address's signed profile is published, for encrypting APPENDs (default https://<domain of --address>)",
    )
    .option('--imap-port <port>', 'local IMAP with STARTTLS (0: any free port)', '11143')
    .option('--imaps-port <port>', 'local IMAP over TLS (0: any free port)', '11993')
    .option(
      '--smtp-port <port>',
      'local SMTP submission with STARTTLS, when --submission was given (0: any free port)',
      '11587',
    )
    .option(
      '--plain',
      'local IMAP and SMTP without TLS (no --imaps-port; loopback only; see docs/bridge.md)',
    )
    .option(
      '--keyring',
      'keep the cache key in the OS keyring (Secret Service via secret-tool, macOS Keychain): later starts need no passphrase',
    )
    .option('--poll <seconds>', 'how often to look for changes on the gateway', '5')
    .option('--autoconfig <file>', 'write a Thunderbird autoconfig file for the local account')
    .option(
      '--mobileconfig <file>',
      'write an Apple configuration profile (.mobileconfig) for the local account and certificate',
    )
    .action(async (opts: BridgeCommandOptions) => {
      const poll = Number(opts.poll);
      if (!Number.isFinite(poll) || poll < 1 || poll > 3600)
        throw new CliError('--poll: seconds between 1 and 3600', 2);
      // Before any prompt: a second bridge on the directory is refused before anyone types
      // a password for it (runBridge's lock still decides, data-dir-lock.ts).
      await asCliError(async () => refuseDataDirInUse(opts.dataDir));
      const setup = await setupFrom(opts);
      // Used only when the account exists already (runBridge); the first start's are in `setup`.
      const update = setup === undefined ? await updateFrom(opts) : undefined;
      const askPassphrase = () =>
        readSecret({
          what: 'bridge passphrase',
          envName: BRIDGE_PASSPHRASE_ENV,
          file: opts.passphraseFile,
          confirm: setup !== undefined,
        });
      const keyring = opts.keyring === true ? systemKeyring() : undefined;
      if (keyring === null)
        process.stderr.write(
          `no OS keyring is known on ${process.platform}; using the bridge passphrase\n`,
        );
      // With a keyring the passphrase is asked only if the keyring has no key for this cache.
      const passphrase = keyring ? askPassphrase : await askPassphrase();
      const bridge = await asCliError(() =>
        runBridge({
          dataDir: opts.dataDir,
          passphrase,
          ...(keyring ? { keyring } : {}),
          ...(setup !== undefined ? { setup } : {}),
          ...(update !== undefined ? { update } : {}),
          // Clients are served during the first sync: the settings are printed at once.
          waitForFirstSync: false,
          imapPort: port(opts.imapPort, '--imap-port'),
          imapsPort: opts.plain === true ? null : port(opts.imapsPort, '--imaps-port'),
          smtpPort: port(opts.smtpPort, '--smtp-port'),
          plainOnly: opts.plain === true,
          pollMs: poll * 1000,
          // On stderr, so stdout stays the settings alone (scripts read them).
          onProgress: ({ mailbox, done, total }) =>
            process.stderr.write(`syncing ${mailbox}: ${done}/${total} messages\n`),
          logger: {
            info: () => undefined,
            warn: (details, message) =>
              process.stderr.write(`${message} ${JSON.stringify(details)}\n`),
            error: (details, message) =>
              process.stderr.write(`${message} ${JSON.stringify(details)}\n`),
          },
        }),
      );
      process.stdout.write(clientSettings(bridge));
      if (opts.autoconfig !== undefined) {
        writeFileAtomic(opts.autoconfig, thunderbirdAutoconfig(bridge), 0o644);
        process.stdout.write(`Thunderbird autoconfig: ${opts.autoconfig}\n`);
      }
      if (opts.mobileconfig !== undefined) {
        const cert = bridge.certFile === null ? null : readFileSync(bridge.certFile, 'utf8');
        writeFileAtomic(opts.mobileconfig, appleMobileconfig(bridge, cert), 0o644);
        process.stdout.write(`Apple configuration profile: ${opts.mobileconfig}\n`);
      }
      let stopping = false;
      const stop = (): void => {
        if (stopping) process.exit(1);
        stopping = true;
        bridge.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
