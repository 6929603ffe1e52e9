import { formatSet } from '../commands/sequence.js';
import { flagList } from '../serializer.js';
import type { Session } from '../session.js';
import { tryCreate } from './mailboxes.js';
import { resolveSet } from './resolve.js';
import { selectedOf, writable } from './select.js';
import type { Cmd, OkReply } from './types.js';

/** STORE / UID STORE (§6.4.6): the new flags are reported unless .SILENT. */
export async function handleStore(s: Session, cmd: Cmd<'STORE'>): Promise<void> {
  const sel = selectedOf(s);
  writable(sel);
  const targets = resolveSet(sel, cmd.set, cmd.uid);
  if (targets.length === 0) return;
  const flags = cmd.flags.filter((f) => f !== '\\Recent');
  const updated = await sel.handle.setFlags(
    targets.map(([, uid]) => uid),
    cmd.operation,
    flags,
  );
  // a new keyword is announced before the FETCH that shows it (RFC 3501 §7.2.6)
  s.announceFlags(sel);
  if (cmd.silent) return;
  for (const r of updated) {
    const seq = sel.tracker.seqOf(r.uid);
    if (seq === 0) continue;
    const uid = cmd.uid ? ` UID ${r.uid}` : '';
    s.out.line(`* ${seq} FETCH (FLAGS ${flagList(r.flags, sel.handle.isRecent(r.uid))}${uid})`);
  }
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
