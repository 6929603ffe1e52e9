/**
 * `recrypt list join <invitation>` (remote members): runs on the machine of
 * someone who is not a user of the list's gateway, with their own S/MIME P-256
 * certificate and key (a .p12, or PEM key and certificate files). It needs no owner key
 * file; it prints the join token the list owner admits with `recrypt list admit`.
 */
import type { Command } from 'commander';
import {
  decodeInvitation,
  identityFromPem,
  identityFromPkcs12,
  invitationTrust,
  joinRemote,
  type RemoteIdentity,
} from '../../owner/remote-join.js';
import { CliError } from '../errors.js';
import { print } from '../output.js';
import { P12_PASSWORD_ENV } from '../owner-context.js';
import { readSecret } from '../secrets.js';

interface JoinOpts {
  p12?: string;
  passwordFile?: string;
  key?: string;
  cert?: string;
}

async function identityOf(opts: JoinOpts): Promise<RemoteIdentity> {
  if (opts.p12 !== undefined && opts.key === undefined && opts.cert === undefined) {
    const password = await readSecret({
      what: '.p12 password',
      envName: P12_PASSWORD_ENV,
      file: opts.passwordFile,
    });
    return identityFromPkcs12(opts.p12, password);
  }
  if (opts.p12 === undefined && opts.key !== undefined && opts.cert !== undefined)
    return identityFromPem(opts.key, opts.cert);
  throw new CliError('give either --p12 FILE or both --key FILE and --cert FILE', 2);
}

export function registerRemoteJoin(list: Command): void {
  list
    .command('join <invitation>')
    .description(
      "a remote member's step, with your own S/MIME P-256 certificate: print the join token for the list owner",
    )
    .option('--p12 <file>', 'your certificate and key (.p12)')
    .option(
      '--password-file <file>',
      `read the .p12 password from this file (or set ${P12_PASSWORD_ENV}; default: prompt)`,
    )
    .option('--key <file>', 'your private key (unencrypted PEM), instead of --p12')
    .option('--cert <file>', 'your certificate (PEM), with --key')
    .action(async (text: string, opts: JoinOpts) => {
      const invitation = decodeInvitation(text);
      const identity = await identityOf(opts);
      const trust = invitationTrust(invitation);
      if (trust !== null)
        print(`gateway ${invitation.gateway}, certificate SHA-256 ${trust.sha256}`);
      const token = await joinRemote(invitation, identity);
      print(
        `join token for ${invitation.list} (send it to the list owner; they run \`recrypt list admit <token>\`):`,
      );
      print(token);
    });
}
