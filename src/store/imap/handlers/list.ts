import { StoreError, type MailboxInfo } from '../../backend.js';
import type { ListOptions } from '../commands/types.js';
import { list } from '../serializer.js';
import type { Session } from '../session.js';
import {
  attributes,
  fullPattern,
  handleList,
  patternMatcher,
  statusLine,
  userOf,
  wireName,
} from './mailboxes.js';
import type { Cmd } from './types.js';

/** LIST: the RFC 3501 form, or LIST-EXTENDED (RFC 5258) / LIST-STATUS (RFC 5819) when options were given. */
export async function handleListCommand(s: Session, cmd: Cmd<'LIST' | 'LSUB'>): Promise<void> {
  if (cmd.name === 'LIST' && cmd.extended !== undefined)
    return handleListExtended(s, cmd.reference, cmd.extended);
  return handleList(s, cmd);
}

/**
 * RFC 5258 §3: the selection options narrow which mailboxes are listed, the patterns
 * are ORed, each mailbox is listed once. RECURSIVEMATCH also lists a matching mailbox
 * that fails the selection but has a descendant that passes it, with CHILDINFO saying
 * why. Return option STATUS sends `* STATUS` right after each selectable mailbox's LIST
 * (RFC 5819 §2); CHILDREN and SPECIAL-USE attributes are always sent.
 */
async function handleListExtended(s: Session, reference: string, o: ListOptions): Promise<void> {
  if (
    o.patterns.length === 1 &&
    o.patterns[0] === '' &&
    !o.selectSubscribed &&
    !o.selectSpecialUse
  ) {
    s.out.line('* LIST (\\Noselect) "/" ""');
    return;
  }
  const matchers = o.patterns
    .filter((p) => p !== '')
    .map((p) => patternMatcher(fullPattern(reference, p)));
  const user = userOf(s);
  const all = await user.listMailboxes();
  // SUBSCRIBED lists subscribed names that no mailbox has, as \NonExistent (RFC 5258 §3).
  const ghosts = new Set<string>();
  if (o.selectSubscribed) {
    const known = new Set(all.map((m) => m.name));
    for (const name of await user.subscriptions())
      if (!known.has(name)) {
        ghosts.add(name);
        all.push({ name, subscribed: true, noSelect: true });
      }
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  const selected = (m: MailboxInfo): boolean =>
    (!o.selectSubscribed || m.subscribed) && (!o.selectSpecialUse || m.specialUse !== undefined);
  const childInfo: string[] = [];
  if (o.selectSubscribed) childInfo.push('"SUBSCRIBED"');
  if (o.selectSpecialUse) childInfo.push('"SPECIAL-USE"');
  for (const info of all) {
    if (!matchers.some((match) => match(info.name))) continue;
    const prefix = `${info.name}/`;
    const childSelected =
      o.recursiveMatch && all.some((m) => m.name.startsWith(prefix) && selected(m));
    if (!selected(info) && !childSelected) continue;
    const attrs = ghosts.has(info.name)
      ? ['\\NonExistent', ...attributes(info, all).filter((a) => a !== '\\Noselect')]
      : attributes(info, all);
    if ((o.selectSubscribed || o.returnSubscribed) && info.subscribed) attrs.push('\\Subscribed');
    const extra = childSelected ? ` ("CHILDINFO" ${list(childInfo)})` : '';
    s.out.line(`* LIST ${list(attrs)} "/" ${wireName(info.name)}${extra}`);
    if (o.returnStatus !== null && !info.noSelect) {
      // A mailbox deleted since it was listed just goes without STATUS (RFC 5819 §2).
      const line = await statusLine(user, info.name, o.returnStatus).catch((err: unknown) => {
        if (err instanceof StoreError && err.code === 'no-such-mailbox') return null;
        throw err;
      });
      if (line !== null) s.out.line(line);
    }
    await s.out.maybeFlush();
  }
}
