import { formatSet } from '../commands/sequence.js';
import { flagList } from '../serializer.js';
import type { Session } from '../session.js';
import { tryCreate } from './mailboxes.js';
import { resolveSet } from './resolve.js';
import { selectedOf, writable } from './select.js';
import type { Cmd, OkReply } from './types.js';

/**
 * STORE / UID STORE (§6.4.6): the new flags are reported unless .SILENT. With
 * (UNCHANGEDSINCE n) (RFC 7162 §3.1.3) messages changed after n are left alone and
 * named in `OK [MODIFIED set]`. Once CONDSTORE is enabled every FETCH carries UID and
 * MODSEQ, and a changed message is reported even with .SILENT (RFC 7162 §3.1.3).
 */
export async function handleStore(s: Session, cmd: Cmd<'STORE'>): Promise<OkReply | void> {
  const sel = selectedOf(s);
  writable(sel);
  if (cmd.unchangedSince !== undefined) s.enableCondstore();
  const targets = resolveSet(sel, cmd.set, cmd.uid);
  if (targets.length === 0) return;
  const flags = cmd.flags.filter((f) => f !== '\\Recent');
  const uids = targets.map(([, uid]) => uid);
  const before = new Map(sel.handle.records().map((r) => [r.uid, r.modseq]));
  const { records: updated, modified } =
    cmd.unchangedSince === undefined
      ? { records: await sel.handle.setFlags(uids, cmd.operation, flags), modified: [] }
      : await sel.handle.setFlagsUnchangedSince(uids, cmd.operation, flags, cmd.unchangedSince);
  // a new keyword is announced before the FETCH that shows it (RFC 3501 §7.2.6)
  s.announceFlags(sel);
  for (const r of updated) {
    const seq = sel.tracker.seqOf(r.uid);
    if (seq === 0) continue;
    const flagPart = `FLAGS ${flagList(r.flags, sel.handle.isRecent(r.uid))}`;
    if (!s.condstore) {
      if (!cmd.silent) s.out.line(`* ${seq} FETCH (${flagPart}${cmd.uid ? ` UID ${r.uid}` : ''})`);
    } else if (!cmd.silent)
      s.out.line(`* ${seq} FETCH (UID ${r.uid} ${flagPart} MODSEQ (${r.modseq}))`);
    else if (r.modseq !== before.get(r.uid))
      s.out.line(`* ${seq} FETCH (UID ${r.uid} MODSEQ (${r.modseq}))`);
  }
  if (modified.length === 0) return;
  const numbers = cmd.uid ? modified : modified.map((uid) => sel.tracker.seqOf(uid));
  return {
    code: `MODIFIED ${formatSet(numbers.filter((n) => n > 0))}`,
    text: 'Conditional STORE failed',
  };
}

function copyUid(result: { uidValidity: number; pairs: Array<[number, number]> }): string {
  return `COPYUID ${result.uidValidity} ${formatSet(result.pairs.map(([a]) => a))} ${formatSet(result.pairs.map(([, b]) => b))}`;
}

/** COPY / UID COPY (§6.4.7) with COPYUID (RFC 4315). */
export async function handleCopy(s: Session, cmd: Cmd<'COPY'>): Promise<OkReply | void> {
  const sel = selectedOf(s);
  const uids = resolveSet(sel, cmd.set, cmd.uid).map(([, uid]) => uid);
  if (uids.length === 0) return { text: 'No messages copied' };
  const result = await sel.handle.copy(uids, cmd.mailbox).catch(tryCreate);
  if (result.pairs.length === 0) return { text: 'No messages copied' };
  return { code: copyUid(result), text: 'COPY completed' };
}

/** MOVE / UID MOVE (RFC 6851 §3.3): COPYUID in an untagged OK, then the EXPUNGEs. */
export async function handleMove(s: Session, cmd: Cmd<'MOVE'>): Promise<OkReply | void> {
  const sel = selectedOf(s);
  writable(sel);
  // the set means what it meant to the client: resolved before other sessions' changes
  // are reported (a `*` must not take in a message whose EXISTS it never saw; as Dovecot)
  const uids = resolveSet(sel, cmd.set, cmd.uid).map(([, uid]) => uid);
  await s.flushUpdates(true);
  if (uids.length === 0) return { text: 'No messages moved' };
  const result = await sel.handle.move(uids, cmd.mailbox).catch(tryCreate);
  if (result.pairs.length > 0) s.out.line(`* OK [${copyUid(result)}] Moved`);
  for (const line of sel.tracker.expunged(result.pairs.map(([src]) => src))) s.out.line(line);
  return { text: 'MOVE completed' };
}
