/**
 * A mailbox renamed on the gateway (by another device, or by a local client through it),
 * recognised by its UIDVALIDITY (README.md, "Sync"): its cached messages are sealed again
 * under the new name (a message file's associated data names its mailbox, cache.ts), so
 * nothing is fetched or decrypted again. The state then carries the new name; the state
 * journal writes it as a new mailbox and drops the old one (state-ops.ts), and the old
 * name's files are unlinked only after that save (cache.ts `removeMailboxFiles`): a crash
 * before it leaves the old name listed with its files, one after it leaves files that the
 * next open removes (cache-orphans.ts).
 */
import type { BridgeCache, CachedMailbox } from './cache.js';

/** Files moved between two pauses: a large mailbox does not hold the event loop. */
const MOVE_BATCH = 200;

export async function moveCachedMailbox(
  cache: BridgeCache,
  state: CachedMailbox,
  name: string,
  path: string,
): Promise<void> {
  if (state.name === name) return;
  const from: CachedMailbox = { ...state };
  const to: CachedMailbox = { ...state, name };
  let moved = 0;
  for (const message of state.messages) {
    const bytes = cache.readMessage(from, message.uid);
    // A file already missing stays missing: reading it answers NO, as before the rename.
    if (bytes !== null) cache.writeMessage(to, message.uid, bytes);
    if (++moved % MOVE_BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  cache.removeMailboxFiles(from.name);
  state.name = name;
  state.path = path;
}
