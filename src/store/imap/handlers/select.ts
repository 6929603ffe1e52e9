import { matchSet, STAR, type SequenceSet } from '../commands/sequence.js';
import type { QresyncParams } from '../commands/types.js';
import { ImapError } from '../errors.js';
import { flagList } from '../serializer.js';
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

/** SELECT / EXAMINE (§6.3.1, §6.3.2), with (CONDSTORE) and (QRESYNC (…)) (RFC 7162 §3.1.8, §3.2.5) */
export async function handleSelect(s: Session, cmd: Cmd<'SELECT' | 'EXAMINE'>): Promise<OkReply> {
  if (cmd.qresync !== undefined && !s.qresync)
    throw new ImapError('BAD', 'QRESYNC must be enabled first');
  // the previous mailbox is closed even when this SELECT fails (§6.3.1); QRESYNC clients
  // need to know where its responses end (RFC 7162 §3.2.11)
  if (s.selected !== null && s.qresync) s.out.line('* OK [CLOSED] Previous mailbox closed');
  await s.unselect();
  if (cmd.condstore === true) s.enableCondstore();
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
  if (s.condstore) s.out.line(`* OK [HIGHESTMODSEQ ${handle.highestModseq()}] Highest`);
  if (cmd.qresync !== undefined && cmd.qresync.uidValidity === handle.uidValidity)
    resync(s, sel, cmd.qresync);
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

/**
 * EXPUNGE (§6.4.3) and UID EXPUNGE (RFC 4315 §2.1). With CONDSTORE enabled the tagged OK
 * carries the new HIGHESTMODSEQ (RFC 7162 §3.1.10), as Dovecot's does.
 */
export async function handleExpunge(s: Session, cmd: Cmd<'EXPUNGE'>): Promise<OkReply | void> {
  const sel = selectedOf(s);
  writable(sel);
  // Only messages of the client's view: a \Deleted message another session just added,
  // whose EXISTS this one has not seen, stays (as in Dovecot). Other sessions' changes go
  // out next, so our EXPUNGE numbers follow them.
  const only =
    cmd.set === null ? [...sel.tracker.all] : resolveSet(sel, cmd.set, true).map(([, uid]) => uid);
  await s.flushUpdates(true);
  const gone = only.length === 0 ? [] : await sel.handle.expunge(only);
  for (const line of sel.tracker.expunged(gone)) s.out.line(line);
  if (s.condstore)
    return { code: `HIGHESTMODSEQ ${sel.handle.highestModseq()}`, text: 'Expunge completed' };
}

/**
 * QRESYNC at SELECT (RFC 7162 §3.2.5): `* VANISHED (EARLIER)` with the UIDs expunged
 * after the client's mod-sequence, then FETCH (UID FLAGS MODSEQ) of every message changed
 * since (Dovecot's order), both limited to the known UIDs when given. Seq-match data only lets a server
 * narrow the VANISHED list; it is accepted and not used, so the list may be longer.
 */
function resync(s: Session, sel: Selected, q: QresyncParams): void {
  const max = sel.handle.uidNext() - 1;
  const known = (uid: number): boolean => q.knownUids === null || matchSet(q.knownUids, max, uid);
  const gone = vanishedIn(sel, q.modseq, q.knownUids);
  if (gone !== '') s.out.line(`* VANISHED (EARLIER) ${gone}`);
  for (const r of sel.handle.records()) {
    if (r.modseq <= q.modseq || !known(r.uid)) continue;
    const seq = sel.tracker.seqOf(r.uid);
    if (seq === 0) continue;
    const flags = flagList(r.flags, sel.handle.isRecent(r.uid));
    s.out.line(`* ${seq} FETCH (UID ${r.uid} FLAGS ${flags} MODSEQ (${r.modseq}))`);
  }
}

/**
 * The UIDs expunged after `since`, within `known` when given, as a set (empty string:
 * none). Computed on ranges: before the store's load it is every gap below UIDNEXT.
 */
export function vanishedIn(sel: Selected, since: number, known: SequenceSet | null): string {
  const max = sel.handle.uidNext() - 1;
  const limits: Array<[number, number]> =
    known === null
      ? [[1, Math.max(1, max)]]
      : known.map(([a0, b0]) => {
          const a = a0 === STAR ? max : a0;
          const b = b0 === STAR ? max : b0;
          return [Math.min(a, b), Math.max(a, b)];
        });
  const parts: Array<[number, number]> = [];
  for (const [a, b] of sel.handle.vanished(since)) {
    for (const [c, d] of limits) {
      const lo = Math.max(a, c);
      const hi = Math.min(b, d);
      if (lo <= hi) parts.push([lo, hi]);
    }
  }
  parts.sort((x, y) => x[0] - y[0]);
  const merged: Array<[number, number]> = [];
  for (const [lo, hi] of parts) {
    const last = merged[merged.length - 1];
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  return merged.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`)).join(',');
}
