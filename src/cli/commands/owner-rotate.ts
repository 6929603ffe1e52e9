/**
 * `owner rotate` (docs/cli.md "Rotating the mailbox key"): a new group key for the
 * mailbox. Fast mode re-keys every device at the gateway by δ = g′·g⁻¹; the key file keeps
 * every former group so old mail stays readable.
 */
import type { Command } from 'commander';
import { rotateMailbox } from '../../owner/rotation.js';
import { print } from '../output.js';
import { openOwnerKeyWithPassphrase } from '../owner-context.js';

interface RotateOpts {
  keyFile: string;
  passphraseFile?: string;
  fast?: boolean;
}

export function registerRotate(owner: Command, keyOptions: (command: Command) => Command): void {
  keyOptions(
    owner
      .command('rotate')
      .description(
        'replace the mailbox group key; every device keeps reading old mail (docs/threat-model.md)',
      )
      .option('--fast', 'the gateway re-keys every device by δ = g′·g⁻¹ (no device involvement)'),
  ).action(async (opts: RotateOpts) => {
    const { key, passphrase } = await openOwnerKeyWithPassphrase(opts);
    const result = await rotateMailbox(key, { keyFile: opts.keyFile, passphrase });
    if (result.recovered === 'completed')
      print(`an interrupted rotation had reached the gateway: ${opts.keyFile} updated to it`);
    if (result.recovered === 'discarded')
      print('an interrupted rotation had not reached the gateway: its key file was discarded');
    print(`rotated ${key.address} (${result.mode}): ${result.devices} device(s) re-keyed`);
    print(`new group: ${result.groupId}`);
    print(`former group kept in ${opts.keyFile}: ${result.formerGroupId}`);
    print(`the profile, SMIMEA record and the MX now use the new group certificate`);
  });
}
