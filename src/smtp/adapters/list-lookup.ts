/**
 * A mailing list as the MX sees it (issue 8): one lookup gives every local member's
 * mailbox plus the list's own (the archive), the list group certificate the post is
 * encrypted to once, the posting policy as a refusal text, and the header rewrite.
 *
 * Policies: members (the envelope sender is a member or the list owner), announce (the
 * list owner only), open (anyone). Moderated lists would hold posts for the owner; that
 * is not built yet, so their posts are refused with a text saying so. The null sender
 * (bounces, auto-replies) is refused by every list: it would only loop.
 */
import type { KeyStore, MailingList, User } from '../../keystore/index.js';
import { addListHeaders } from '../list-headers.js';
import type { RecipientLookup } from '../ports.js';

export async function listLookup(
  options: {
    keyStore: KeyStore;
    listArchive?: boolean;
    listArchiveUrl?: (list: string) => string;
  },
  list: MailingList,
  mailboxOf: (user: User) => string,
): Promise<RecipientLookup> {
  const members = await options.keyStore.listMembers(list.address);
  const mailboxes = options.listArchive === true ? [list.address.toLowerCase()] : [];
  for (const member of members) {
    const user = await options.keyStore.getUser(member.address);
    if (user !== null && !mailboxes.includes(mailboxOf(user))) mailboxes.push(mailboxOf(user));
  }
  const posters = new Set([list.owner, ...members.map((m) => m.address)]);
  const refusalFor = (sender: string): string | null => {
    const from = sender.trim().toLowerCase();
    if (from === '') return 'Mailing lists do not accept mail from the null sender';
    switch (list.policy) {
      case 'open':
        return null;
      case 'members':
        return posters.has(from) ? null : `Only members may post to ${list.address}`;
      case 'announce':
        return from === list.owner
          ? null
          : `${list.address} is announce-only: only its owner posts`;
      case 'moderated':
        return `${list.address} is moderated and held posts are not supported yet; write to ${list.owner}`;
    }
  };
  const archiveUrl = options.listArchiveUrl?.(list.address);
  return {
    kind: 'list',
    mailboxes,
    groupCertificate: list.group.certificate,
    refusalFor,
    prepare: (message) =>
      addListHeaders(message, {
        address: list.address,
        displayName: list.displayName,
        owner: list.owner,
        acceptsPosts: list.policy !== 'announce',
        subjectTag: list.subjectTag,
        ...(archiveUrl !== undefined ? { archiveUrl } : {}),
      }),
  };
}
