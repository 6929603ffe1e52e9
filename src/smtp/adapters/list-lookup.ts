/**
 * A mailing list as the MX sees it: the list group certificate a post is
 * encrypted to once, the posting policy as a refusal text, the header rewrite, and what
 * happens to the one encrypted copy (src/lists: delivered to every member, or held for
 * the moderator). Also the list's control addresses (src/lists/control-addresses.ts):
 * -owner and -bounces reach the list owner like mail to them; -unsubscribe/-leave and
 * -confirm+token take a member off the list.
 *
 * Policies: members (the envelope sender is a member or the list owner), announce (the
 * list owner only), moderated (anyone; posts not from the owner are held), open (anyone).
 * The null sender (bounces, auto-replies) is refused by every list: it would only loop.
 */
import type { Logger } from 'pino';
import type { KeyStore, MailingList, User } from '../../keystore/index.js';
import { controlAddress, type ControlAddress } from '../../lists/control-addresses.js';
import type { ListServices } from '../../lists/ports.js';
import {
  confirmUnsubscribe,
  confirmationRefusal,
  requestUnsubscribe,
} from '../../lists/unsubscribe.js';
import { addListHeaders } from '../list-headers.js';
import type { RecipientLookup } from '../ports.js';

export interface ListLookupOptions {
  keyStore: KeyStore;
  lists: ListServices;
  listArchiveUrl?: (list: string) => string;
  logger: Logger;
}

function refusalFor(list: MailingList, posters: Set<string>, sender: string): string | null {
  const from = sender.trim().toLowerCase();
  if (from === '') return 'Mailing lists do not accept mail from the null sender';
  switch (list.policy) {
    case 'open':
    case 'moderated':
      return null;
    case 'members':
      return posters.has(from) ? null : `Only members may post to ${list.address}`;
    case 'announce':
      return from === list.owner ? null : `${list.address} is announce-only: only its owner posts`;
  }
}

export async function listLookup(
  options: ListLookupOptions,
  list: MailingList,
): Promise<RecipientLookup> {
  const { lists } = options;
  const members = await options.keyStore.listMembers(list.address);
  const posters = new Set([list.owner, ...members.map((m) => m.address)]);
  const archiveUrl = options.listArchiveUrl?.(list.address);
  const held = (sender: string): boolean =>
    list.policy === 'moderated' && sender.trim().toLowerCase() !== list.owner;
  return {
    kind: 'list',
    groupCertificate: list.group.certificate,
    refusalFor: (sender) =>
      held(sender) && lists.held === undefined
        ? `${list.address} is moderated and this gateway keeps no held posts; write to ${list.owner}`
        : refusalFor(list, posters, sender),
    prepare: (message) =>
      addListHeaders(message, {
        address: list.address,
        displayName: list.displayName,
        acceptsPosts: list.policy !== 'announce',
        subjectTag: list.subjectTag,
        ...(archiveUrl !== undefined ? { archiveUrl } : {}),
      }),
    async accept(mailFrom, ciphertext) {
      if (held(mailFrom) && lists.held !== undefined) {
        const post = await lists.held.hold(list.address, mailFrom, ciphertext);
        options.logger.info({ list: list.address, id: post.id, bytes: post.bytes }, 'post held');
        // The post is held durably: a notice that cannot be stored now must not make the
        // sender retry (that would hold it twice). The owner still sees it in `list held`.
        await lists.notices
          .send({
            to: list.owner,
            from: controlAddress(list.address, 'owner'),
            subject: `Post to ${list.address} held for moderation`,
            text:
              `A post from ${mailFrom} to ${list.address} (${post.bytes} bytes) waits for you.\n` +
              `Only your list key can read it. Look at it and decide with:\n\n` +
              `    recrypt list held ${list.address}\n` +
              `    recrypt list approve ${list.address} ${post.id}\n` +
              `    recrypt list reject ${list.address} ${post.id} --reason "..."\n`,
          })
          .catch((error: Error) =>
            options.logger.warn(
              {
                list: list.address,
                id: post.id,
                err: { name: error.name, message: error.message },
              },
              'held-post notice not sent',
            ),
          );
        return `held for moderation by the owner of ${list.address}`;
      }
      const result = await lists.delivery.deliverPost(list.address, mailFrom, ciphertext);
      return `posted to ${list.address}: stored for ${result.local} mailbox${result.local === 1 ? '' : 'es'}, queued for ${result.remote} remote member${result.remote === 1 ? '' : 's'}`;
    },
  };
}

/** A control address of an existing list, resolved; null when `list` is no list. */
export async function controlLookup(
  options: ListLookupOptions,
  control: ControlAddress,
  list: MailingList,
  mailboxOf: (user: User) => string,
): Promise<RecipientLookup> {
  const deps = { ...options.lists, keyStore: options.keyStore, logger: options.logger };
  switch (control.action) {
    case 'owner':
    case 'bounces': {
      // Mail for the list's people and delivery reports: the owner reads them, encrypted
      // to the owner's own group like any mail to them.
      const owner = await options.keyStore.getUser(list.owner);
      if (owner?.owner == null) return { kind: 'unknown' };
      return {
        kind: 'local',
        mailbox: mailboxOf(owner),
        groupCertificate: owner.owner.groupCertificate,
      };
    }
    case 'unsubscribe':
      return {
        kind: 'list-command',
        refusalFor: (sender) =>
          sender.trim() === '' ? 'Requests must come from the member, not the null sender' : null,
        run: (sender) => requestUnsubscribe(deps, list, sender),
      };
    case 'confirm':
      return {
        kind: 'list-command',
        refusalFor: (sender) => confirmationRefusal(deps, list, sender, control.token!),
        run: (sender) => confirmUnsubscribe(deps, list, sender),
      };
  }
}
