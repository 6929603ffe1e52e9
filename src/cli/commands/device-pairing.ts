/**
 * Device pairing commands (docs/cli.md "Pairing a device"): the owner's `device invite`,
 * `device approve <code>`, `device refuse <code>` and `device list --pending`, and the
 * new device's `device join <invitation>`, which needs no owner key file: it makes the
 * device's own key and .p12 on the device.
 */
import { type Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeviceName, type OwnerKey } from '../../owner/index.js';
import {
  approvePairing,
  createPairingInvitation,
  listPendingPairings,
  ownerUdfOf,
  refusePairing,
} from '../../owner/pairing-owner.js';
import { startPairing, waitForPairing, writePairedDevice } from '../../owner/pairing-device.js';
import { decodePairingInvitation } from '../../owner/pairing-wire.js';
import { fingerprint } from '../../owner/remote-join.js';
import { CliError } from '../errors.js';
import { print } from '../output.js';

type OpenKey = (opts: KeyOpts) => Promise<OwnerKey>;
interface KeyOpts {
  keyFile: string;
  passphraseFile?: string;
}

/** `device list --pending`: the requests waiting, each with the code to compare. */
export async function printPendingPairings(key: OwnerKey): Promise<void> {
  const pending = await listPendingPairings(key);
  if (pending.length === 0) print('no pairing requests waiting');
  for (const p of pending)
    print(
      `${p.shortCode}\t${p.name}\t${p.client}\tasked ${p.created}\texpires ${p.expires}${
        p.fromInvitation ? '' : '\tNOT made with your invitation: refuse it'
      }`,
    );
}

export function registerPairing(
  device: Command,
  keyOptions: (command: Command) => Command,
  openKey: OpenKey,
): void {
  keyOptions(
    device
      .command('invite')
      .description('a one-time invitation (24 h) for a new device to pair with `device join`'),
  ).action(async (opts: KeyOpts) => {
    const key = await openKey(opts);
    const made = await createPairingInvitation(key);
    print(`pairing invitation for ${key.address} (one use, valid until ${made.expires}):`);
    print(made.invitation);
    print(`on the new device: recrypt device join <invitation> --name <device name>`);
    print(`your fingerprint (UDF), which the device checks: ${ownerUdfOf(key)}`);
  });

  keyOptions(
    device
      .command('approve <code>')
      .description('approve the pairing request that shows this code on the new device'),
  ).action(async (code: string, opts: KeyOpts) => {
    const approved = await approvePairing(await openKey(opts), code);
    print(`device ${approved.name} approved (id ${approved.id}, client ${approved.client})`);
  });

  keyOptions(
    device.command('refuse <code>').description('refuse the pairing request with this code'),
  ).action(async (code: string, opts: KeyOpts) => {
    const refused = await refusePairing(await openKey(opts), code);
    print(`pairing request of ${refused.name} (${refused.shortCode}) refused`);
  });

  device
    .command('join <invitation>')
    .description(
      "on the new device: make its own key, ask the owner to approve, write the device's .p12",
    )
    .requiredOption('--name <name>', 'a name for this device (as `device list` will show it)')
    .addOption(
      new Option('--client <kind>', 'mail client family')
        .choices(['standard', 'outlook'])
        .default('standard'),
    )
    .option('--out <dir>', 'directory for <name>.p12', '.')
    .option('--wait <minutes>', 'how long to wait for the approval', '15')
    .action(
      async (
        text: string,
        opts: { name: string; client: 'standard' | 'outlook'; out: string; wait: string },
      ) => {
        const minutes = Number(opts.wait);
        if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60)
          throw new CliError('--wait: minutes between 1 and 1440', 2);
        const name = checkDeviceName(opts.name);
        const p12File = join(opts.out, `${name}.p12`);
        if (existsSync(p12File))
          throw new CliError(`${p12File} already exists; not overwriting it (use --out)`);
        const invitation = decodePairingInvitation(text);
        if (invitation.ca !== undefined)
          print(
            `gateway ${invitation.gateway}, certificate SHA-256 ${fingerprint(Buffer.from(invitation.ca, 'base64'))}`,
          );
        print(`owner ${invitation.address}, fingerprint (UDF) ${invitation.udf}`);
        const pending = await startPairing(text, { name, client: opts.client });
        print(`pairing code: ${pending.shortCode}`);
        print(
          `waiting for the owner to compare it and run: recrypt device approve ${pending.shortCode}`,
        );
        const approved = await waitForPairing(pending, { timeoutMs: minutes * 60_000 });
        const files = await writePairedDevice(pending, approved, { outDir: opts.out });
        print(
          `device ${files.device.name} added (id ${files.device.id}, client ${files.device.client})`,
        );
        print(`certificate and key: ${files.p12File}`);
        print(`.p12 password (shown once): ${files.p12Password}`);
        print('IMAP settings:');
        print(`  server:   ${files.imap.host}`);
        print(`  port:     ${files.imap.port} (TLS) or ${files.imap.starttlsPort} (STARTTLS)`);
        print(`  username: ${files.username}`);
        print(`  password (shown once): ${files.devicePassword}`);
      },
    );
}
