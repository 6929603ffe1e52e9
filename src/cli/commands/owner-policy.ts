/**
 * `owner policy [--require none|encrypt] [--prefer none|encrypt]` (docs/cli.md, docs/sending.md
 * "The sender's policy"): without options prints the policy of the published profile (no
 * passphrase); with them signs and publishes a profile with the new policy.
 */
import { type Command, Option } from 'commander';
import {
  DEFAULT_POLICY,
  SETTABLE_POLICIES,
  policyToPublish,
  publishProfile,
  publishedPolicy,
  readOwnerPublicInfo,
  type SendingPolicy,
  type SettablePolicy,
} from '../../owner/index.js';
import { print } from '../output.js';
import { openOwnerKey, type KeyFileOptions } from '../owner-context.js';

interface PolicyOpts extends KeyFileOptions {
  require?: SettablePolicy;
  prefer?: SettablePolicy;
}

function describe(address: string, policy: SendingPolicy): string {
  return `policy of ${address}: require ${policy.require}, prefer ${policy.prefer}`;
}

export function registerPolicy(owner: Command, keyOptions: (command: Command) => Command): void {
  keyOptions(
    owner
      .command('policy')
      .description(
        'show your profile\'s policy, or set it: with "require encrypt" mail you send to a recipient without a key is refused',
      )
      .addOption(
        new Option(
          '--require <policy>',
          'what senders must do (and what your own mail must be)',
        ).choices(SETTABLE_POLICIES),
      )
      .addOption(
        new Option('--prefer <policy>', 'what senders should do').choices(SETTABLE_POLICIES),
      ),
  ).action(async (opts: PolicyOpts) => {
    if (opts.require === undefined && opts.prefer === undefined) {
      const info = readOwnerPublicInfo(opts.keyFile);
      const current = await publishedPolicy(info);
      if (current === null)
        print(`${describe(info.address, DEFAULT_POLICY)} (no profile published)`);
      else print(describe(info.address, current));
      return;
    }
    const key = await openOwnerKey(opts);
    const policy = await policyToPublish(key, {
      ...(opts.require === undefined ? {} : { require: opts.require }),
      ...(opts.prefer === undefined ? {} : { prefer: opts.prefer }),
    });
    await publishProfile(key, { policy });
    print(`${describe(key.address, policy)} (profile published)`);
  });
}
