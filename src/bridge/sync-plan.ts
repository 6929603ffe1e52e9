/**
 * What changed in one selected gateway mailbox, applied to the local view (README.md,
 * "Sync"): flags updated and expunges removed here, and the UIDs of the new messages
 * returned for the caller (sync.ts) to fetch in batches. Only what changed since the last
 * complete sync when the gateway keeps mod-sequences (changes.ts); otherwise, or when the
 * counts show an expunge it did not name, the full pass.
 */
import type { ImapFlow } from 'imapflow';
import { changedSince } from './changes.js';
import type { LocalMailbox } from './local-mailbox.js';
import { Upstream, type SelectedMailbox } from './upstream.js';

/**
 * Mailbox syncs that asked only for changes, those that made the full pass, the FETCH
 * responses with flags they read, and the UID SEARCHes of the full pass (tests and
 * benches read them).
 */
export interface SyncStats {
  incremental: number;
  full: number;
  flagResponses: number;
  uidSearches: number;
}

/** The new UIDs to fetch, ascending; flags and expunges are applied already. */
export async function planMailbox(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
): Promise<number[]> {
  const changes = await incremental(mailbox, client, selected, stats);
  if (changes.fresh !== null) return changes.fresh;
  return fullPass(mailbox, client, selected, stats, changes.flagsCurrent);
}

/**
 * Only what changed since the last complete sync (changes.ts), when the gateway keeps
 * mod-sequences and one is known: flags of the changed messages, expunges from VANISHED,
 * new UIDs to fetch (`fresh`, ascending). `fresh` is null when it cannot be used (first
 * sync, NOMODSEQ, no CONDSTORE), and the full pass runs instead; also when the counts
 * disagree (an expunge the gateway did not name: no QRESYNC), but then every local
 * message's flags are the gateway's already (`flagsCurrent`): only which UIDs exist is
 * still unknown.
 */
async function incremental(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
): Promise<{ fresh: number[] | null; flagsCurrent: boolean }> {
  const unusable = { fresh: null, flagsCurrent: false };
  const since = mailbox.state.upstreamModseq;
  if (since === undefined || selected.highestModseq === undefined) return unusable;
  if (!client.enabled.has('CONDSTORE') && !client.enabled.has('QRESYNC')) return unusable;
  if (selected.exists === 0) {
    stats.incremental += 1;
    mailbox.remove(
      mailbox.state.messages.map((m) => m.uid),
      null,
    );
    return { fresh: [], flagsCurrent: true };
  }
  const changes = await changedSince(client, since);
  stats.incremental += 1;
  stats.flagResponses += changes.flags.size;
  if (changes.vanished !== null && changes.vanished.length > 0)
    mailbox.remove(changes.vanished, null);
  const fresh: number[] = [];
  for (const [uid, flags] of changes.flags) {
    const message = mailbox.message(uid);
    if (message === undefined) fresh.push(uid);
    else mailbox.updateFlags(message, flags, null);
  }
  // Every message not named is unchanged since the last complete sync, so it is here
  // already: the counts then agree, unless something went that the gateway did not name.
  if (mailbox.state.messages.length + fresh.length !== changes.exists)
    return { fresh: null, flagsCurrent: true };
  return { fresh: fresh.sort((a, b) => a - b), flagsCurrent: true };
}

/**
 * Which UIDs the gateway holds: what is gone (removed here), what is new (returned,
 * ascending). Flags are fetched only for the local messages, and only when they may be
 * stale (`flagsCurrent` false: no CHANGEDSINCE answer before this pass): a new message's
 * flags come with the message itself (sync.ts), so at a first sync, or after the counts
 * disagreed, one `UID SEARCH` (ESEARCH: a line of ranges) replaces a FETCH response per
 * message.
 */
async function fullPass(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
  flagsCurrent: boolean,
): Promise<number[]> {
  const state = mailbox.state;
  stats.full += 1;
  const local = state.messages.map((m) => m.uid);
  if (selected.exists === 0) {
    if (local.length > 0) mailbox.remove(local, null);
    return [];
  }
  // `state.messages` ascends by UID: the last is the highest known here.
  const last = local.at(-1) ?? 0;
  let present: number[];
  let flags: Map<number, string[]> | null = null;
  if (flagsCurrent || last === 0) {
    present = await Upstream.uidsOf(client);
    stats.uidSearches += 1;
  } else {
    // The known range answers with the flags and shows what is gone; above it only the
    // UIDs are needed, and none can be there when UIDNEXT is not past it.
    flags = await Upstream.flagsOf(client, `1:${last}`);
    stats.flagResponses += flags.size;
    present = [...flags.keys()];
    if (!(selected.uidNext <= last + 1)) {
      stats.uidSearches += 1;
      for (const uid of await Upstream.uidsOf(client, `${last + 1}:*`))
        if (uid > last) present.push(uid);
    }
  }
  const upstream = new Set(present);
  const gone = local.filter((uid) => !upstream.has(uid));
  if (gone.length > 0) mailbox.remove(gone, null);
  if (flags !== null)
    for (const message of [...state.messages]) {
      const current = flags.get(message.uid);
      if (current !== undefined) mailbox.updateFlags(message, current, null);
    }
  return present.filter((uid) => mailbox.message(uid) === undefined).sort((a, b) => a - b);
}
