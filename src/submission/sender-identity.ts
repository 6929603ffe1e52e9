/**
 * Which addresses an authenticated user may send as, at MAIL FROM and in every From
 * field (docs/sending.md "Sending as a list"): their own, and a list of this gateway that
 * they may speak for —
 *
 * | list policy | the list's owner | a member | anyone else |
 * |---|---|---|---|
 * | members, open | yes | yes | no |
 * | announce, moderated | yes | no | no |
 *
 * `open` lets anyone post *to* the list, not speak *as* it; `moderated` holds the
 * members' posts for the owner, so a member sending as the list would bypass that:
 * refused, not held (a held post goes to the members, this mail to its own recipients).
 * Everything else is 550 5.7.1.
 *
 * The list is found with the key store's normalisation (normaliseAddress) and its
 * current record and members are read on every check, so a removed member, a deleted
 * list or a changed policy count from the next MAIL or DATA. On top of that the address
 * as written must be the normalised one up to the upper case of its own letters: a
 * character that only folds to it (the Kelvin sign for "k", "ſ" for "s") is a look-alike
 * and refused, as is anything the normalisation rejects. A `+tag`, another Unicode letter
 * or another domain is simply another address, and no list.
 */
import {
  KeyStoreArgumentError,
  normaliseAddress,
  type KeyStore,
  type MailingList,
} from '../keystore/index.js';
import { SmtpReply } from '../smtp/reply.js';

/** What the check reads: the list record and its members (the key store). */
export type SenderLists = Pick<KeyStore, 'getList' | 'listMembers'>;

export type SenderIdentity =
  { kind: 'own' } | { kind: 'list'; list: string; as: 'owner' | 'member' };

export const senderReplies = {
  notYours: () => new SmtpReply(550, '5.7.1', 'You may only send as your own address'),
  notOnList: (list: string) =>
    new SmtpReply(550, '5.7.1', `You may not send as ${list}: you are not its owner or a member`),
  ownerOnly: (list: MailingList) =>
    new SmtpReply(
      550,
      '5.7.1',
      `You may not send as ${list.address}: it is ${list.policy === 'announce' ? 'announce-only' : 'moderated'}, only its owner sends as it`,
    ),
  unavailable: () =>
    new SmtpReply(451, '4.3.0', 'Temporary failure checking the sender, try again later'),
};

/**
 * True when `written` is `normalised` with some of its letters in their upper case: the
 * only difference normaliseAddress removes that this accepts.
 */
export function sameUpToCase(written: string, normalised: string): boolean {
  const a = [...written];
  const b = [...normalised];
  return a.length === b.length && a.every((c, i) => c === b[i] || c === b[i]!.toUpperCase());
}

function normalised(address: string): string | null {
  try {
    return normaliseAddress(address);
  } catch (error) {
    if (error instanceof KeyStoreArgumentError) return null;
    throw error;
  }
}

/**
 * How `user` (the authenticated, normalised address) may send as `address`: null when
 * the address is neither theirs nor a list here (or a look-alike of one); throws the
 * SmtpReply for a list they may not speak for (550 5.7.1), or 451 4.3.0 when the key
 * store cannot answer.
 */
async function identityOf(
  lists: SenderLists | undefined,
  user: string,
  address: string,
): Promise<SenderIdentity | null> {
  const written = address.trim();
  const key = normalised(written);
  if (key === null || !sameUpToCase(written, key)) return null;
  if (key === user) return { kind: 'own' };
  if (lists === undefined) return null;
  let list: MailingList | null;
  try {
    list = await lists.getList(key);
  } catch {
    throw senderReplies.unavailable();
  }
  if (list === null) return null;
  if (list.owner === user) return { kind: 'list', list: list.address, as: 'owner' };
  let member: boolean;
  try {
    member = (await lists.listMembers(list.address)).some((m) => m.address === user);
  } catch {
    throw senderReplies.unavailable();
  }
  if (!member) throw senderReplies.notOnList(list.address);
  if (list.policy === 'announce' || list.policy === 'moderated')
    throw senderReplies.ownerOnly(list);
  return { kind: 'list', list: list.address, as: 'member' };
}

/** The envelope sender (MAIL FROM) check: the identity, or throws the SmtpReply. */
export async function senderIdentity(
  lists: SenderLists | undefined,
  user: string,
  address: string,
): Promise<SenderIdentity> {
  const identity = await identityOf(lists, user, address);
  if (identity === null) throw senderReplies.notYours();
  return identity;
}

/**
 * Every From address (as written) must be one `user` may send as: throws the SmtpReply
 * for the first that is not, or for a message without a From address.
 */
export async function checkFromAddresses(
  lists: SenderLists | undefined,
  user: string,
  from: string[],
): Promise<void> {
  if (from.length === 0) throw new SmtpReply(550, '5.7.1', 'The message has no From address');
  for (const address of new Set(from))
    if ((await identityOf(lists, user, address)) === null)
      throw new SmtpReply(550, '5.7.1', 'From: may only name your own address');
}
