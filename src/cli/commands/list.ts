/**
 * Mailing-list commands, on an owner's machine: `list create|show|invite|
 * accept|admit|remove|rotate|policy`, and `list join` for remote members (list-remote.ts).
 * The list owner's group secrets live in a list key file (`--list-file`, default
 * ./<list address>.list.key) that the owner key opens.
 */
import type { Command } from 'commander';
import { readListKeyFile, writeListKeyFile } from '../../owner/list-key-file.js';
import {
  acceptInvite,
  admitMember,
  createList,
  inviteMember,
  inviteRemoteMember,
  removeMember,
  rotateList,
  setListPolicy,
  showList,
  type PostingPolicy,
} from '../../owner/lists.js';
import { encodeInvitation, invitationTrust, remoteCertificateOf } from '../../owner/remote-join.js';
import { CliError } from '../errors.js';
import { print } from '../output.js';
import { registerModeration } from './list-moderation.js';
import { registerRemoteJoin } from './list-remote.js';
import { DEFAULT_KEY_FILE, PASSPHRASE_ENV, openOwnerKey } from '../owner-context.js';

const POLICIES = ['members', 'moderated', 'announce', 'open'];

interface KeyOpts {
  keyFile: string;
  passphraseFile?: string;
  listFile?: string;
}

function withKey(command: Command, listFile = false): Command {
  command
    .option('--key-file <file>', 'owner key file', DEFAULT_KEY_FILE)
    .option(
      '--passphrase-file <file>',
      `read the passphrase from this file (or set ${PASSPHRASE_ENV}; default: prompt)`,
    );
  if (listFile)
    command.option('--list-file <file>', "the list's key file (default ./<list>.list.key)");
  return command;
}

const listFileOf = (list: string, opts: KeyOpts): string =>
  opts.listFile ?? `${list.trim().toLowerCase()}.list.key`;

function checkPolicy(policy: string | undefined): PostingPolicy | undefined {
  if (policy !== undefined && !POLICIES.includes(policy))
    throw new CliError(`policy must be one of ${POLICIES.join(', ')}`, 2);
  return policy as PostingPolicy | undefined;
}

export function register(program: Command): void {
  const list = program.command('list').description('mailing lists: one encryption per post');

  withKey(
    list
      .command('create <address>')
      .description('make the list group key (kept in the list key file) and register the list')
      .option('--name <name>', 'display name')
      .option('--policy <policy>', `who may post: ${POLICIES.join('|')}`, 'members')
      .option('--subject-tag <tag>', 'prefix for the Subject of posts, e.g. "[dev]"'),
    true,
  ).action(
    async (
      address: string,
      opts: KeyOpts & { name?: string; policy?: string; subjectTag?: string },
    ) => {
      const policy = checkPolicy(opts.policy);
      const key = await openOwnerKey(opts);
      const { list: view, secrets } = await createList(key, {
        address,
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(policy !== undefined ? { policy } : {}),
        ...(opts.subjectTag !== undefined ? { subjectTag: opts.subjectTag } : {}),
      });
      const file = listFileOf(view.address, opts);
      writeListKeyFile(file, secrets, key);
      print(`list ${view.address} created (policy ${view.policy})`);
      print(`list key file: ${file} (keep it with your owner key: it alone holds the list key)`);
    },
  );

  withKey(
    list.command('show <list>').description('the list, and its members if you own it'),
  ).action(async (address: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const { list: view, members } = await showList(key, address);
    print(`${view.address}  ${view.name}  owner ${view.owner}  policy ${view.policy}`);
    if (view.subjectTag !== '') print(`subject tag: ${view.subjectTag}`);
    print(`list key: ${view.groupId.slice(0, 16)}… (${view.formerGroupIds.length} former)`);
    for (const m of members ?? [])
      print(`  member ${m.address} (${m.remote === true ? 'remote, ' : ''}since ${m.joined})`);
  });

  withKey(
    list
      .command('invite <list> <member>')
      .description('an invite token for a member of this gateway (--remote: for anyone else)')
      .option('--remote', 'for someone elsewhere, who joins with their own S/MIME certificate'),
  ).action(async (address: string, member: string, opts: KeyOpts & { remote?: boolean }) => {
    const key = await openOwnerKey(opts);
    if (opts.remote === true) {
      const invitation = await inviteRemoteMember(key, address, member);
      const trust = invitationTrust(invitation);
      print(
        `invitation for ${member} (give it to them; they run \`recrypt list join <invitation> --p12 <their .p12>\`):`,
      );
      print(encodeInvitation(invitation));
      print(
        trust === null
          ? `gateway ${invitation.gateway} (trusted through the system's CAs)`
          : `gateway ${invitation.gateway}, certificate SHA-256 ${trust.sha256}`,
      );
      return;
    }
    const invite = await inviteMember(key, address, member);
    print(
      `invite for ${member} (give it to them; they run \`recrypt list accept ${address} <invite>\`):`,
    );
    print(invite);
  });

  withKey(
    list
      .command('accept <list> <invite>')
      .description(
        "the member's step: blind your group key and print the join token for the list owner",
      ),
  ).action(async (address: string, invite: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const token = await acceptInvite(key, address, invite);
    print(`join token (send it to the list owner; they run \`recrypt list admit <token>\`):`);
    print(token);
  });

  withKey(
    list.command('admit <join-token>').description("the list owner's step: finish a member's join"),
    true,
  ).action(async (joinToken: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const listAddress = /^rlj1\./.test(joinToken)
      ? (
          JSON.parse(Buffer.from(joinToken.slice(5), 'base64url').toString('utf8')) as {
            list?: string;
          }
        ).list
      : undefined;
    if (typeof listAddress !== 'string') throw new CliError('not a join token', 2);
    const secrets = readListKeyFile(listFileOf(listAddress, opts), key);
    const remote = remoteCertificateOf(joinToken);
    if (remote !== null) print(`${remote.member} is remote: certificate SHA-256 ${remote.sha256}`);
    const member = await admitMember(key, secrets, joinToken);
    print(`${member} joined ${secrets.address}`);
  });

  withKey(
    list.command('remove <list> <member>').description('remove a member (or yourself) at once'),
  ).action(async (address: string, member: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    await removeMember(key, address, member);
    print(`${member} removed from ${address}; their key is deleted`);
    if (member.toLowerCase() !== key.address.toLowerCase())
      print(`run \`recrypt list rotate ${address}\` so that they cannot read later posts`);
  });

  withKey(
    list.command('rotate <list>').description('a new list key; every remaining member is re-keyed'),
    true,
  ).action(async (address: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const file = listFileOf(address, opts);
    const rotated = await rotateList(key, readListKeyFile(file, key));
    writeListKeyFile(file, rotated, key, true);
    print(`${rotated.address} rotated: new posts go to the new key; old posts stay readable`);
  });

  withKey(
    list
      .command('policy <list> <policy>')
      .description(`who may post: ${POLICIES.join('|')}`)
      .option('--subject-tag <tag>', 'also set the subject tag ("" for none)'),
  ).action(async (address: string, policy: string, opts: KeyOpts & { subjectTag?: string }) => {
    const checked = checkPolicy(policy)!;
    const key = await openOwnerKey(opts);
    const view = await setListPolicy(key, address, {
      policy: checked,
      ...(opts.subjectTag !== undefined ? { subjectTag: opts.subjectTag } : {}),
    });
    print(`${view.address}: policy ${view.policy}`);
  });

  registerModeration(list, { withKey, listFileOf });
  registerRemoteJoin(list);
}
