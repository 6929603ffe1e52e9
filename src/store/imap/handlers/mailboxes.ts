import { StoreError, type MailboxInfo, type UserStore } from '../../backend.js';
import { ImapError } from '../errors.js';
import { encodeModifiedUtf7 as encodeMailboxName } from '../../mutf7.js';
import { astr, list } from '../serializer.js';
import type { Session } from '../session.js';
import type { StatusItem } from '../commands/types.js';
import type { Cmd } from './types.js';

export function userOf(s: Session): UserStore {
  if (s.user === null) throw new ImapError('NO', 'Not authenticated');
  return s.user;
}

/** A mailbox name as it goes on the wire: modified UTF-7, quoted when needed. */
export function wireName(name: string): string {
  return astr(encodeMailboxName(name));
}

/** RFC 3501 names ending in the delimiter mean "will have children": the store needs the bare name. */
function bare(name: string): string {
  return name.endsWith('/') ? name.replace(/\/+$/, '') : name;
}

/** CREATE (§6.3.3) */
export async function handleCreate(s: Session, cmd: Cmd<'CREATE'>): Promise<void> {
  const name = bare(cmd.mailbox);
  if (name.toUpperCase() === 'INBOX')
    throw new ImapError('NO', 'Mailbox already exists', 'ALREADYEXISTS');
  await userOf(s).createMailbox(name);
}

/** DELETE (§6.3.4) */
export async function handleDelete(s: Session, cmd: Cmd<'DELETE'>): Promise<void> {
  if (cmd.mailbox === 'INBOX') throw new ImapError('NO', 'INBOX cannot be deleted', 'CANNOT');
  if (s.selected?.handle.name === cmd.mailbox) await s.unselect();
  await userOf(s).deleteMailbox(cmd.mailbox);
}

/** RENAME (§6.3.5) */
export async function handleRename(s: Session, cmd: Cmd<'RENAME'>): Promise<void> {
  await userOf(s).renameMailbox(cmd.from, bare(cmd.to));
}

/** SUBSCRIBE / UNSUBSCRIBE (§6.3.6, §6.3.7) */
export async function handleSubscribe(
  s: Session,
  cmd: Cmd<'SUBSCRIBE' | 'UNSUBSCRIBE'>,
): Promise<void> {
  await userOf(s).setSubscribed(cmd.mailbox, cmd.name === 'SUBSCRIBE');
}

/** `*` matches anything, `%` anything but the delimiter (§6.3.8); INBOX is case-insensitive. */
export function patternMatcher(pattern: string): (name: string) => boolean {
  let re = '^';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += '[^/]*';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const rx = new RegExp(`${re}$`, 'su');
  const inboxRx = /^inbox(\/|$)/i.test(pattern) ? new RegExp(`${re}$`, 'isu') : null;
  return (name) => rx.test(name) || (name === 'INBOX' && inboxRx !== null && inboxRx.test(name));
}

/** The reference name and the pattern joined as §6.3.8 describes. */
export function fullPattern(reference: string, pattern: string): string {
  return reference === '' || reference.endsWith('/') || pattern.startsWith('/')
    ? reference + pattern
    : `${reference}/${pattern}`;
}

export function attributes(info: MailboxInfo, all: MailboxInfo[]): string[] {
  const attrs: string[] = [];
  if (info.noSelect) attrs.push('\\Noselect');
  const prefix = `${info.name}/`;
  attrs.push(all.some((m) => m.name.startsWith(prefix)) ? '\\HasChildren' : '\\HasNoChildren');
  if (info.specialUse !== undefined) attrs.push(info.specialUse);
  return attrs;
}

/** LIST / LSUB (§6.3.8, §6.3.9) with SPECIAL-USE attributes (RFC 6154) and CHILDREN (RFC 3348). */
export async function handleList(s: Session, cmd: Cmd<'LIST' | 'LSUB'>): Promise<void> {
  if (cmd.pattern === '') {
    if (cmd.name === 'LIST') s.out.line('* LIST (\\Noselect) "/" ""');
    return;
  }
  const full = fullPattern(cmd.reference, cmd.pattern);
  const match = patternMatcher(full);
  const all = await userOf(s).listMailboxes();
  if (cmd.name === 'LSUB') {
    // A subscription outlives its mailbox (§6.3.6): such a name is listed \Noselect.
    const known = new Set(all.map((m) => m.name));
    for (const name of await userOf(s).subscriptions())
      if (!known.has(name)) all.push({ name, subscribed: true, noSelect: true });
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return lsub(s, all, match, full.includes('%'));
  }
  for (const info of all) {
    if (!match(info.name)) continue;
    s.out.line(`* LIST ${list(attributes(info, all))} "/" ${wireName(info.name)}`);
    await s.out.maybeFlush();
  }
}

/**
 * LSUB (§6.3.9): subscribed names that match; with `%`, a parent of a subscribed name
 * that is not itself subscribed is listed `\Noselect` so the client can descend to it.
 */
async function lsub(
  s: Session,
  all: MailboxInfo[],
  match: (name: string) => boolean,
  percent: boolean,
): Promise<void> {
  const subscribed = all.filter((m) => m.subscribed);
  const names = new Set(subscribed.map((m) => m.name));
  const parents = new Set<string>();
  for (const info of subscribed) {
    if (match(info.name)) {
      s.out.line(`* LSUB ${list(attributes(info, all))} "/" ${wireName(info.name)}`);
      continue;
    }
    if (!percent) continue;
    const levels = info.name.split('/');
    for (let i = 1; i < levels.length; i++) {
      const parent = levels.slice(0, i).join('/');
      if (!names.has(parent) && !parents.has(parent) && match(parent)) {
        parents.add(parent);
        s.out.line(`* LSUB (\\Noselect) "/" ${wireName(parent)}`);
      }
    }
  }
}

/** STATUS (§6.3.10) */
export async function handleStatus(s: Session, cmd: Cmd<'STATUS'>): Promise<void> {
  if (cmd.items.includes('HIGHESTMODSEQ')) s.enableCondstore(); // RFC 7162 §3.1
  s.out.line(await statusLine(userOf(s), cmd.mailbox, cmd.items));
}

/** `* STATUS name (items)`: also sent by LIST-STATUS (RFC 5819). */
export async function statusLine(
  user: UserStore,
  mailbox: string,
  items: readonly StatusItem[],
): Promise<string> {
  const st = await user.status(mailbox);
  const values: Record<StatusItem, number> = {
    MESSAGES: st.messages,
    RECENT: st.recent,
    UIDNEXT: st.uidNext,
    UIDVALIDITY: st.uidValidity,
    UNSEEN: st.unseen,
    HIGHESTMODSEQ: st.highestModseq,
  };
  return `* STATUS ${wireName(mailbox)} ${list(items.flatMap((i) => [i, String(values[i])]))}`;
}

/** Storage's "no such mailbox" for a target mailbox becomes NO [TRYCREATE] (§6.3.11, §6.4.7). */
export function tryCreate(err: unknown): never {
  if (err instanceof StoreError && err.code === 'no-such-mailbox')
    throw new ImapError('NO', 'Mailbox does not exist', 'TRYCREATE');
  throw err;
}
