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
 * Mailbox syncs that asked only for changes, those that made the full pass, and the FETCH
 * responses with flags they read (tests and benches read them).
 */
export interface SyncStats {
  incremental: number;
  full: number;
  flagResponses: number;
}

/** The new UIDs to fetch, ascending; flags and expunges are applied already. */
export async function planMailbox(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
): Promise<number[]> {
  return (
    (await incremental(mailbox, client, selected, stats)) ??
    (await fullPass(mailbox, client, selected, stats))
  );
}

/**
 * Only what changed since the last complete sync (changes.ts), when the gateway keeps
 * mod-sequences and one is known: flags of the changed messages, expunges from VANISHED,
 * new UIDs to fetch. Null when it cannot be used (first sync, NOMODSEQ, no CONDSTORE)
 * or when the counts disagree (an expunge the gateway did not name: no QRESYNC), and
 * the full pass runs instead. Returns the new UIDs, ascending.
 */
async function incremental(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
): Promise<number[] | null> {
  const since = mailbox.state.upstreamModseq;
  if (since === undefined || selected.highestModseq === undefined) return null;
  if (!client.enabled.has('CONDSTORE') && !client.enabled.has('QRESYNC')) return null;
  if (selected.exists === 0) {
    stats.incremental += 1;
    mailbox.remove(
      mailbox.state.messages.map((m) => m.uid),
      null,
    );
    return [];
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
  if (mailbox.state.messages.length + fresh.length !== changes.exists) return null;
  return fresh.sort((a, b) => a - b);
}

/** Every UID with its flags: what is gone, what changed, what is new (ascending). */
async function fullPass(
  mailbox: LocalMailbox,
  client: ImapFlow,
  selected: SelectedMailbox,
  stats: SyncStats,
): Promise<number[]> {
  const state = mailbox.state;
  const upstreamFlags =
    selected.exists === 0 ? new Map<number, string[]>() : await Upstream.flagsOf(client);
  stats.full += 1;
  stats.flagResponses += upstreamFlags.size;
  const gone = state.messages.filter((m) => !upstreamFlags.has(m.uid)).map((m) => m.uid);
  if (gone.length > 0) mailbox.remove(gone, null);
  for (const message of [...state.messages]) {
    const flags = upstreamFlags.get(message.uid);
    if (flags !== undefined) mailbox.updateFlags(message, flags, null);
  }
  return [...upstreamFlags.keys()]
    .filter((uid) => mailbox.message(uid) === undefined)
    .sort((a, b) => a - b);
}
