import { ImapError } from '../errors.js';
import type { Selected, Session } from '../session.js';
import { resolveSet } from './resolve.js';
import { userOf } from './mailboxes.js';
import type { Cmd, OkReply } from './types.js';

export function selectedOf(s: Session): Selected {
  if (s.selected === null) throw new ImapError('BAD', 'No mailbox selected');
  return s.selected;
}

export function writable(sel: Selected): void {
  if (sel.readOnly) throw new ImapError('NO', 'Mailbox is read-only', 'CANNOT');
}

/** SELECT / EXAMINE (§6.3.1, §6.3.2) */
export async function handleSelect(s: Session, cmd: Cmd<'SELECT' | 'EXAMINE'>): Promise<OkReply> {
  await s.unselect();
  const handle = await userOf(s).openMailbox(cmd.mailbox, { readOnly: cmd.name === 'EXAMINE' });
  const sel = await s.select(handle);
  const records = handle.records();
  s.announceFlags(sel, true);
  s.out.line(`* ${sel.tracker.count} EXISTS`);
  const recent = handle.recentCount();
  sel.tracker.setAnnouncedRecent(recent);
  s.out.line(`* ${recent} RECENT`);
  const known = new Set(sel.tracker.all);
  const firstUnseen = records.findIndex((r) => known.has(r.uid) && !r.flags.includes('\\Seen'));
  if (firstUnseen >= 0)
    s.out.line(
      `* OK [UNSEEN ${sel.tracker.seqOf((records[firstUnseen] as { uid: number }).uid)}] First unseen`,
    );
  s.out.line(`* OK [UIDVALIDITY ${handle.uidValidity}] UIDs valid`);
  s.out.line(`* OK [UIDNEXT ${handle.uidNext()}] Predicted next UID`);
  return { code: sel.readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${cmd.name} completed` };
}

/** CHECK (§6.4.1): storage is durable on every change already. */
export async function handleCheck(): Promise<void> {}

/** CLOSE (§6.4.2): silently expunges when read-write. */
export async function handleClose(s: Session): Promise<void> {
  const sel = selectedOf(s);
  if (!sel.readOnly) await sel.handle.expunge();
  await s.unselect();
}

/** UNSELECT (RFC 3691) */
export async function handleUnselect(s: Session): Promise<void> {
  selectedOf(s);
  await s.unselect();
}

/** EXPUNGE (§6.4.3) and UID EXPUNGE (RFC 4315 §2.1) */
export async function handleExpunge(s: Session, cmd: Cmd<'EXPUNGE'>): Promise<void> {
  const sel = selectedOf(s);
  writable(sel);
  // Only messages of the client's view: a \Deleted message another session just added,
  // whose EXISTS this one has not seen, stays (as in Dovecot). Other sessions' changes go
  // out next, so our EXPUNGE numbers follow them.
  const only =
    cmd.set === null ? [...sel.tracker.all] : resolveSet(sel, cmd.set, true).map(([, uid]) => uid);
  await s.flushUpdates(true);
  if (only.length === 0) return;
  const gone = await sel.handle.expunge(only);
  for (const line of sel.tracker.expunged(gone)) s.out.line(line);
}
