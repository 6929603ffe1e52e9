/** Owner commands (on the owner's machine): `owner init|gateway|rotate|policy`, `device add|list|revoke` (pairing: device-pairing.ts), `profile show|publish`, `smimea`, `read`. */
import { type Command, Option } from 'commander';
import {
  addDevice,
  listDevices,
  ownerInit,
  publishProfile,
  readMessage,
  repointGateway,
  revokeDevice,
  showProfile,
  smimeaFor,
} from '../../owner/index.js';
import { CliError } from '../errors.js';
import { printPendingPairings, registerPairing } from './device-pairing.js';
import { registerPolicy } from './owner-policy.js';
import { registerRekey, registerRotate, revokeCompromised } from './owner-rotate.js';
import { print } from '../output.js';
import {
  DEFAULT_KEY_FILE,
  P12_PASSWORD_ENV,
  PASSPHRASE_ENV,
  openOwnerKey,
  publicLookup,
  readPemFile,
} from '../owner-context.js';
import { readSecret } from '../secrets.js';

interface KeyOpts {
  keyFile: string;
  passphraseFile?: string;
}

function keyOptions(command: Command): Command {
  return command
    .option('--key-file <file>', 'owner key file', DEFAULT_KEY_FILE)
    .option(
      '--passphrase-file <file>',
      `read the passphrase from this file (or set ${PASSPHRASE_ENV}; default: prompt)`,
    );
}

export function register(program: Command): void {
  const owner = program.command('owner').description("owner: your account's keys");
  keyOptions(
    owner
      .command('init <address>')
      .description(
        'make the owner CA and group key into an encrypted key file, enrol, publish the profile',
      )
      .requiredOption('--token <token>', 'the one-time enrolment token from the operator')
      .requiredOption('--gateway <url>', "the gateway's admin API, https://host:port")
      .option(
        '--ca <file>',
        "PEM certificate to trust for the gateway's TLS (self-signed gateways)",
      ),
  ).action(
    async (address: string, opts: KeyOpts & { token: string; gateway: string; ca?: string }) => {
      const gatewayCa = opts.ca === undefined ? null : readPemFile(opts.ca, 'CA certificate');
      const passphrase = await readSecret({
        what: 'passphrase',
        envName: PASSPHRASE_ENV,
        file: opts.passphraseFile,
        confirm: true,
      });
      const result = await ownerInit({
        address,
        token: opts.token,
        gateway: opts.gateway,
        gatewayCa,
        keyFile: opts.keyFile,
        passphrase,
      });
      print(`enrolled ${result.address}`);
      print(
        `owner key file: ${result.keyFile} (keep it and its passphrase safe: it alone holds your group key)`,
      );
      print(`owner fingerprint (UDF): ${result.udf}`);
      if (result.profileError !== null) {
        throw new CliError(
          `enrolled, but publishing the profile failed: ${result.profileError}; run \`recrypt profile publish\``,
        );
      }
      print('profile published');
    },
  );

  keyOptions(
    owner
      .command('gateway <url>')
      .description(
        "point your key file at the gateway's new address or TLS certificate (checked first: the gateway must hold your enrolment)",
      )
      .option(
        '--ca <file>',
        "PEM certificate to trust for the gateway's TLS (its self-signed certificate, trusted by its key; omit for a CA-issued one)",
      ),
  ).action(async (url: string, opts: KeyOpts & { ca?: string }) => {
    const gatewayCa = opts.ca === undefined ? null : readPemFile(opts.ca, 'CA certificate');
    const passphrase = await readSecret({
      what: 'passphrase',
      envName: PASSPHRASE_ENV,
      file: opts.passphraseFile,
    });
    const result = await repointGateway({
      keyFile: opts.keyFile,
      passphrase,
      gateway: url,
      gatewayCa,
    });
    print(`gateway for ${result.address}: ${result.gateway} (was ${result.previous})`);
  });
  registerRotate(owner, keyOptions);
  registerPolicy(owner, keyOptions);

  const device = program.command('device').description('owner: devices that read your mail');
  keyOptions(
    device
      .command('add <name>')
      .description(
        'make a device key and .p12, upload its certificate and recryption key, print its IMAP settings',
      )
      .addOption(
        new Option('--client <kind>', 'mail client family')
          .choices(['standard', 'outlook'])
          .default('standard'),
      )
      .option('--out <dir>', 'directory for <name>.p12', '.'),
  ).action(
    async (name: string, opts: KeyOpts & { client: 'standard' | 'outlook'; out: string }) => {
      const key = await openOwnerKey(opts);
      const added = await addDevice(key, { name, client: opts.client, outDir: opts.out });
      print(
        `device ${added.device.name} added (id ${added.device.id}, client ${added.device.client})`,
      );
      print(`certificate and key: ${added.p12File}`);
      print(`.p12 password (shown once): ${added.p12Password}`);
      print('IMAP settings:');
      print(`  server:   ${added.imap.host}`);
      print(`  port:     ${added.imap.port} (TLS) or ${added.imap.starttlsPort} (STARTTLS)`);
      print(`  username: ${added.username}`);
      print(`  password (shown once): ${added.devicePassword}`);
      if (added.warning !== null) throw new CliError(added.warning);
    },
  );
  keyOptions(
    device
      .command('list')
      .description('list your devices')
      .option('--pending', 'list the pairing requests waiting for your approval instead'),
  ).action(async (opts: KeyOpts & { pending?: boolean }) => {
    if (opts.pending === true) return printPendingPairings(await openOwnerKey(opts));
    const devices = await listDevices(await openOwnerKey(opts));
    if (devices.length === 0) print('no devices');
    for (const d of devices) {
      const state = d.revoked === null ? 'active' : `revoked ${d.revoked}`;
      print(`${d.id}\t${d.name}\t${d.client}\t${state}\tlast seen ${d.lastSeen ?? 'never'}`);
    }
  });
  registerPairing(device, keyOptions, openOwnerKey);
  registerRekey(device);
  keyOptions(
    device
      .command('revoke <nameOrId>')
      .description('revoke a device at once (by name or id)')
      .option(
        '--compromised',
        'its key may have leaked: also start a full rotation of the mailbox key (owner rotate)',
      ),
  ).action(async (nameOrId: string, opts: KeyOpts & { compromised?: boolean }) => {
    if (opts.compromised === true) return revokeCompromised(nameOrId, opts);
    const revoked = await revokeDevice(await openOwnerKey(opts), nameOrId);
    print(`device ${revoked.name} (id ${revoked.id}) revoked`);
  });

  const profile = program.command('profile').description('mail profiles');
  profile
    .command('show [address]')
    .description('fetch and verify a profile (default: your own), print it as JSON')
    .option('--gateway <url>', 'fetch from this origin instead of https://<domain>')
    .option('--ca <file>', 'PEM certificate to trust for that origin')
    .option('--key-file <file>', 'owner key file (for your address and gateway)', DEFAULT_KEY_FILE)
    .action(
      async (
        address: string | undefined,
        opts: { gateway?: string; ca?: string; keyFile: string },
      ) => {
        const target = publicLookup(address, opts);
        const fetched = await showProfile(target.address, target.lookup);
        print(
          JSON.stringify(
            { url: fetched.url, verified: true, ProfileMailPublic: fetched.profile },
            null,
            2,
          ),
        );
      },
    );
  keyOptions(
    profile
      .command('publish')
      .description('sign a fresh profile with your owner key and publish it'),
  ).action(async (opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    await publishProfile(key);
    print(`profile of ${key.address} published`);
  });

  program
    .command('smimea <address>')
    .description("print the RFC 8162 SMIMEA record of an address's group certificate")
    .option('--gateway <url>', 'fetch from this origin instead of https://<domain>')
    .option('--ca <file>', 'PEM certificate to trust for that origin')
    .option('--key-file <file>', 'owner key file (for your gateway)', DEFAULT_KEY_FILE)
    .action(async (address: string, opts: { gateway?: string; ca?: string; keyFile: string }) => {
      const target = publicLookup(address, opts);
      print((await smimeaFor(target.address, target.lookup)).record);
    });

  program
    .command('read <message>')
    .description('decrypt an S/MIME message with a device .p12 and print it (debugging)')
    .requiredOption('--p12 <file>', 'the device .p12')
    .option(
      '--p12-password-file <file>',
      `read the .p12 password from this file (or set ${P12_PASSWORD_ENV}; default: prompt)`,
    )
    .action(async (message: string, opts: { p12: string; p12PasswordFile?: string }) => {
      const p12Password = await readSecret({
        what: '.p12 password',
        envName: P12_PASSWORD_ENV,
        file: opts.p12PasswordFile,
      });
      const plain = await readMessage({ messageFile: message, p12File: opts.p12, p12Password });
      process.stdout.write(plain);
    });
}
