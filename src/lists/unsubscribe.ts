/**
 * Leaving a list by mail (RFC 2369 List-Unsubscribe: `<mailto:team-unsubscribe@…>`), in
 * two steps so that a forged envelope sender cannot remove anyone: a mail to
 * `team-unsubscribe@` (or `team-leave@`) makes the gateway send the member a confirmation
 * whose reply address is `team-confirm+<token>@`; a mail from the member to that address
 * removes them. The list owner is then told, with the advice to rotate the list key
 * (docs/lists.md: removal stops recryption at once; only rotation protects later posts
 * against the member's old key).
 *
 * One message per list cannot carry a per-member link, so RFC 8058 one-click
 * unsubscription (an HTTPS URL with a member token) is not offered: the same encrypted
 * post goes to every member.
 */
import type { Logger } from 'pino';
import type { KeyStore, MailingList } from '../keystore/index.js';
import { checkConfirmationToken, confirmationToken, controlAddress } from './control-addresses.js';
import type { NoticeSender } from './ports.js';

export interface UnsubscribeDeps {
  keyStore: KeyStore;
  notices: NoticeSender;
  /** Key for the confirmation tokens (a gateway secret). */
  secret: string;
  now?: () => number;
  logger: Logger;
}

const memberOf = async (deps: UnsubscribeDeps, list: string, address: string) =>
  (await deps.keyStore.listMembers(list)).find((member) => member.address === address);

/** After a mail to team-unsubscribe@: a confirmation to the sender if they are a member. */
export async function requestUnsubscribe(
  deps: UnsubscribeDeps,
  list: MailingList,
  sender: string,
): Promise<string> {
  const member = sender.trim().toLowerCase();
  const record = await memberOf(deps, list.address, member);
  if (record !== undefined) {
    const token = confirmationToken(deps.secret, list.address, member, (deps.now ?? Date.now)());
    const at = list.address.lastIndexOf('@');
    const confirm = `${list.address.slice(0, at)}-confirm+${token}${list.address.slice(at)}`;
    await deps.notices.send({
      to: member,
      from: confirm,
      subject: `Confirm: leave ${list.address}`,
      headers: { 'Reply-To': confirm },
      // A remote member's confirmation crosses other servers: only they may read it.
      ...(record.certificate === undefined ? {} : { encryptTo: record.certificate }),
      text:
        `Someone, probably you, asked to remove ${member} from the list ${list.address}.\n\n` +
        `To leave the list, reply to this message (the text does not matter), or send any\n` +
        `mail from ${member} to:\n\n    ${confirm}\n\n` +
        `If you did not ask for this, ignore this message: nothing changes. The address\n` +
        `works for seven days.\n`,
    });
    deps.logger.info({ list: list.address, member }, 'unsubscribe confirmation sent');
  } else {
    deps.logger.info({ list: list.address }, 'unsubscribe request from a non-member ignored');
  }
  // The same answer either way: the reply must not tell who is a member.
  return `if ${member} is a member of ${list.address}, a confirmation request is on its way`;
}

/** At RCPT: is this confirmation address valid for this envelope sender? null if so. */
export function confirmationRefusal(
  deps: UnsubscribeDeps,
  list: MailingList,
  sender: string,
  token: string,
): string | null {
  const member = sender.trim().toLowerCase();
  if (member === '') return 'Confirmations must come from the member, not the null sender';
  switch (
    checkConfirmationToken(deps.secret, list.address, member, token, (deps.now ?? Date.now)())
  ) {
    case 'valid':
      return null;
    case 'expired':
      return `This confirmation has expired; write to ${controlAddress(list.address, 'unsubscribe')} again`;
    case 'invalid':
      return `This confirmation address is not valid for ${member}`;
  }
}

/** After a valid confirmation: the member leaves; member and owner are told. */
export async function confirmUnsubscribe(
  deps: UnsubscribeDeps,
  list: MailingList,
  sender: string,
): Promise<string> {
  const member = sender.trim().toLowerCase();
  const record = await memberOf(deps, list.address, member);
  if (record === undefined) return `${member} is not a member of ${list.address} (any more)`;
  await deps.keyStore.removeListMember(list.address, member);
  deps.logger.info({ list: list.address, member }, 'member left by mail');
  const owner = controlAddress(list.address, 'owner');
  await deps.notices.send({
    to: member,
    from: owner,
    subject: `You have left ${list.address}`,
    ...(record.certificate === undefined ? {} : { encryptTo: record.certificate }),
    text: `${member} is no longer a member of ${list.address} and will receive no more posts.\n`,
  });
  if (list.owner !== member) {
    await deps.notices.send({
      to: list.owner,
      from: owner,
      subject: `${member} left ${list.address}`,
      text:
        `${member} confirmed leaving ${list.address}; the gateway no longer recrypts posts\n` +
        `for them. To make sure that their old key reads no later post either, rotate the\n` +
        `list key now:\n\n    recrypt list rotate ${list.address}\n`,
    });
  }
  return `${member} has left ${list.address}`;
}
