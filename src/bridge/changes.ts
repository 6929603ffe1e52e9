/**
 * What changed in the selected gateway mailbox since a mod-sequence (RFC 7162): `UID FETCH
 * 1:* (UID FLAGS) (CHANGEDSINCE n VANISHED)`. The gateway's proxy relays CONDSTORE and
 * QRESYNC from its store (src/imap/capabilities.ts); the answer holds only the messages
 * whose flags changed or that are new since `n`, and with QRESYNC enabled (upstream.ts)
 * `* VANISHED (EARLIER)` with the UIDs expunged since. Later syncs of a large mailbox then
 * cost what changed, not a line per message (README.md, "Sync").
 */
import type { ImapFlow } from 'imapflow';
import type { Flag } from '../store/backend.js';

export interface ChangedSince {
  /** UID → flags of every message changed or new since the mod-sequence. */
  flags: Map<number, Flag[]>;
  /** UIDs the gateway reported expunged; null when it does not report them (no QRESYNC). */
  vanished: number[] | null;
  /** The gateway's message count once the answer is in (EXISTS and VANISHED during it counted). */
  exists: number;
}

/**
 * A VANISHED (EARLIER) set is the server's to choose: a range may name UIDs never seen
 * here. imapflow walks it one UID at a time; beyond this many the list is dropped and the
 * caller falls back to comparing UID lists (a full pass), so memory stays bounded.
 */
const MAX_VANISHED = 100_000;

export async function changedSince(client: ImapFlow, modseq: number): Promise<ChangedSince> {
  const qresync = client.enabled.has('QRESYNC');
  let vanished: number[] | null = qresync ? [] : null;
  const onExpunge = (event: { uid?: number; vanished?: boolean }): void => {
    if (vanished === null) return;
    // A plain EXPUNGE (a sequence number, no UID) during the fetch: the count check catches it.
    if (event.vanished !== true || event.uid === undefined) return;
    if (vanished.length >= MAX_VANISHED) vanished = null;
    else vanished.push(event.uid);
  };
  client.on('expunge', onExpunge);
  const flags = new Map<number, Flag[]>();
  try {
    const messages = await client.fetchAll(
      '1:*',
      { uid: true, flags: true },
      { uid: true, changedSince: BigInt(modseq) },
    );
    for (const m of messages) flags.set(m.uid, [...(m.flags ?? [])]);
  } finally {
    client.off('expunge', onExpunge);
  }
  const exists = client.mailbox === false ? 0 : client.mailbox.exists;
  return { flags, vanished, exists };
}
