/**
 * Moderation commands on the `list` command (docs/lists.md "Moderation"), for the owner
 * of a moderated list: `list held <list> [id]` (the held posts, read with the list key
 * file; with an id, that post decrypted), `list approve <list> <id>`, `list reject <list>
 * <id> [--reason …]`. Key options and the list key file are those of the other list
 * commands (list.ts passes its helpers in).
 */
import type { Command } from 'commander';
import { readListKeyFile } from '../../owner/list-key-file.js';
import {
  approveHeldPost,
  fetchHeldPost,
  listHeldPosts,
  readHeldPost,
  rejectHeldPost,
} from '../../owner/list-moderation.js';
import { CliError } from '../errors.js';
import { print } from '../output.js';
import { openOwnerKey, type KeyFileOptions } from '../owner-context.js';

type KeyOpts = KeyFileOptions & { listFile?: string };

export interface ListCommandHelpers {
  /** Adds the owner key options (and `--list-file` when asked). */
  withKey: (command: Command, listFile?: boolean) => Command;
  listFileOf: (list: string, opts: KeyOpts) => string;
}

/**
 * What a poster wrote (From, Subject) goes to a terminal: control characters, including
 * escape sequences and bidirectional overrides, are shown as '?' rather than obeyed.
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g;
const shown = (text: string): string => text.replace(UNPRINTABLE, '?');

export function registerModeration(list: Command, helpers: ListCommandHelpers): void {
  const { withKey, listFileOf } = helpers;

  withKey(
    list
      .command('held <list> [id]')
      .description(
        'the posts held for moderation, read with the list key; with an id, print that post',
      ),
    true,
  ).action(async (address: string, id: string | undefined, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const secrets = readListKeyFile(listFileOf(address, opts), key);
    if (id !== undefined) {
      const content = await readHeldPost(secrets, await fetchHeldPost(key, address, id));
      if (!content.readable)
        throw new CliError(`held post ${id} does not open with the list key: ${content.reason}`);
      process.stdout.write(content.message);
      return;
    }
    const posts = await listHeldPosts(key, address);
    if (posts.length === 0) {
      print(`no posts held for ${secrets.address}`);
      return;
    }
    print(`${posts.length} post(s) held for ${secrets.address}:`);
    for (const post of posts) {
      const content = await readHeldPost(secrets, await fetchHeldPost(key, address, post.id));
      print('');
      print(`${post.id}  received ${post.received}  ${post.bytes} bytes`);
      print(`  envelope sender: ${shown(post.mailFrom)}`);
      if (content.readable) {
        print(`  From:    ${shown(content.from)}`);
        print(`  Subject: ${shown(content.subject)}`);
        print(`  Date:    ${shown(content.date)}`);
      } else {
        print(`  (the list key cannot read this post: ${content.reason})`);
      }
    }
    print('');
    print(`approve: recrypt list approve ${secrets.address} <id>`);
    print(`reject:  recrypt list reject ${secrets.address} <id> [--reason "…"]`);
  });

  withKey(
    list
      .command('approve <list> <id>')
      .description('deliver a held post to the list (its members and archive)'),
  ).action(async (address: string, id: string, opts: KeyOpts) => {
    const key = await openOwnerKey(opts);
    const delivered = await approveHeldPost(key, address, id);
    print(
      `post ${id} approved: delivered to ${delivered.local} mailbox(es)` +
        (delivered.remote > 0 ? ` and queued for ${delivered.remote} remote member(s)` : ''),
    );
  });

  withKey(
    list
      .command('reject <list> <id>')
      .description('drop a held post; the poster is told it was rejected')
      .option('--reason <text>', 'told to the poster'),
  ).action(async (address: string, id: string, opts: KeyOpts & { reason?: string }) => {
    const key = await openOwnerKey(opts);
    const { notified } = await rejectHeldPost(key, address, id, opts.reason);
    print(`post ${id} rejected` + (notified === null ? '' : `; ${shown(notified)} has been told`));
  });
}
