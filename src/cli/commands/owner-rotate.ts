/**
 * Mailbox key rotation commands (docs/cli.md "Rotating the mailbox key"): the owner's
 * `owner rotate [--fast | --continue | --cancel]` and `device revoke <device>
 * --compromised` (which starts a full rotation at once), and the device's `device rekey`,
 * which needs no owner key file: it re-runs the blinded issue with the device's own .p12.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { revokeDevice } from '../../owner/index.js';
import { rekeyDevice } from '../../owner/rekey-device.js';
import { rotateMailbox, type RotateResult } from '../../owner/rotation.js';
import { cancelFullRotation, continueFullRotation } from '../../owner/rotation-full.js';
import { CliError } from '../errors.js';
import { print } from '../output.js';
import {
  openOwnerKeyWithPassphrase,
  P12_PASSWORD_ENV,
  readPemFile,
  type KeyFileOptions,
} from '../owner-context.js';
import { readSecret } from '../secrets.js';

export const DEVICE_PASSWORD_ENV = 'RECRYPT_DEVICE_PASSWORD';

interface RotateOpts extends KeyFileOptions {
  fast?: boolean;
  continue?: boolean;
  cancel?: boolean;
}

function printStarted(address: string, keyFile: string, result: RotateResult): void {
  if (result.recovered === 'completed')
    print(`an interrupted rotation had reached the gateway: ${keyFile} updated to it`);
  if (result.recovered === 'discarded')
    print('an interrupted rotation had not reached the gateway: its key file was discarded');
  if (result.pending) {
    print(`full rotation of ${address} started: new group ${result.groupId}`);
    print(`the MX keeps the current group until every device holds a key for the new one`);
    print(
      `on each of the ${result.devices} device(s): recrypt device rekey --p12 <its .p12> --gateway <url>`,
    );
    print(`then here: recrypt owner rotate --continue`);
    return;
  }
  print(`rotated ${address} (${result.mode}): ${result.devices} device(s) re-keyed`);
  print(`new group: ${result.groupId}`);
  print(`former group kept in ${keyFile}: ${result.formerGroupId}`);
  print(`the profile, SMIMEA record and the MX now use the new group certificate`);
}

async function continueRotation(opts: RotateOpts): Promise<void> {
  const { key, passphrase } = await openOwnerKeyWithPassphrase(opts);
  const result = await continueFullRotation(key, { keyFile: opts.keyFile, passphrase });
  for (const name of result.answered) print(`answered ${name}`);
  for (const name of result.refused)
    print(
      `REFUSED a request for ${name}: not made with that device's key (ask it to run device rekey again)`,
    );
  if (result.committed) {
    print(`rotated ${key.address} (full): new group ${result.groupId}`);
    print(`the profile, SMIMEA record and the MX now use the new group certificate`);
  } else {
    print(`waiting for: ${result.missing.join(', ')}`);
    print(`run recrypt owner rotate --continue again once they ran device rekey`);
  }
}

export function registerRotate(owner: Command, keyOptions: (command: Command) => Command): void {
  keyOptions(
    owner
      .command('rotate')
      .description(
        'replace the mailbox group key (default: full, every device re-keys itself); old mail stays readable',
      )
      .option('--fast', 'the gateway re-keys every device by δ = g′·g⁻¹ at once (see threat model)')
      .option('--continue', 'answer the devices that re-keyed; commit once all did')
      .option('--cancel', 'drop a full rotation that is waiting for the devices'),
  ).action(async (opts: RotateOpts) => {
    if ([opts.fast, opts.continue, opts.cancel].filter(Boolean).length > 1)
      throw new CliError('choose one of --fast, --continue, --cancel');
    if (opts.continue === true) return continueRotation(opts);
    const { key, passphrase } = await openOwnerKeyWithPassphrase(opts);
    if (opts.cancel === true) {
      await cancelFullRotation(key, { keyFile: opts.keyFile, passphrase });
      print('the pending rotation was dropped; the mailbox keeps its group');
      return;
    }
    const result = await rotateMailbox(key, {
      keyFile: opts.keyFile,
      passphrase,
      mode: opts.fast === true ? 'fast' : 'full',
    });
    printStarted(key.address, opts.keyFile, result);
  });
}

/** `device revoke --compromised`: the revoke, then a full rotation started at once. */
export async function revokeCompromised(nameOrId: string, opts: KeyFileOptions): Promise<void> {
  const { key, passphrase } = await openOwnerKeyWithPassphrase(opts);
  const revoked = await revokeDevice(key, nameOrId);
  print(`device ${revoked.name} (id ${revoked.id}) revoked`);
  const result = await rotateMailbox(key, { keyFile: opts.keyFile, passphrase, mode: 'full' });
  printStarted(key.address, opts.keyFile, result);
}

export function registerRekey(device: Command): void {
  device
    .command('rekey')
    .description("on a device: re-key it for its mailbox's new group (full rotation)")
    .requiredOption('--p12 <file>', "the device's .p12")
    .requiredOption('--gateway <url>', "the gateway's public API, https://host:port")
    .option('--ca <file>', "PEM certificate to trust for the gateway's TLS (self-signed gateways)")
    .option('--p12-password-file <file>', `the .p12 password (or set ${P12_PASSWORD_ENV})`)
    .option('--password-file <file>', `the device's IMAP password (or set ${DEVICE_PASSWORD_ENV})`)
    .action(
      async (opts: {
        p12: string;
        gateway: string;
        ca?: string;
        p12PasswordFile?: string;
        passwordFile?: string;
      }) => {
        let p12: Uint8Array;
        try {
          p12 = new Uint8Array(readFileSync(opts.p12));
        } catch (error) {
          throw new CliError(
            `cannot read ${opts.p12}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
          );
        }
        const p12Password = await readSecret({
          what: '.p12 password',
          envName: P12_PASSWORD_ENV,
          file: opts.p12PasswordFile,
        });
        const devicePassword = await readSecret({
          what: 'device password',
          envName: DEVICE_PASSWORD_ENV,
          file: opts.passwordFile,
        });
        const result = await rekeyDevice({
          p12,
          p12Password,
          devicePassword,
          gateway: opts.gateway,
          ca: opts.ca === undefined ? null : readPemFile(opts.ca, 'CA certificate'),
        });
        print(
          `re-key request sent for ${result.device} (${result.address}), new group ${result.groupId}`,
        );
        print('the owner completes it with: recrypt owner rotate --continue');
      },
    );
}
