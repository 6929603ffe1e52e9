/**
 * A deterministic run of changes to a bridge cache (src/bridge/cache.ts), made as the
 * local view makes them (src/bridge/local-mailbox.ts: every change raises HIGHESTMODSEQ
 * and gives the message the new value): step s sets the flags of one of 200 messages,
 * adds message 1000 + s and expunges message 950 + s. The state after step s is a
 * function of s alone, so a test can tell which save a killed process had reached.
 */
import type { BridgeCache, CachedMailbox, CachedMessage } from '../../src/bridge/cache.js';

export const BASE_MESSAGES = 200;

function message(uid: number, modseq: number): CachedMessage {
  return {
    uid,
    flags: [],
    internalDate: 1_700_000_000_000 + uid,
    size: 100 + (uid % 50),
    modseq,
    kind: 'decrypted',
  };
}

/** Writes the message file of `message` (its size in bytes), as the sync does before adding it. */
export function store(cache: BridgeCache, box: CachedMailbox, message: CachedMessage): void {
  cache.writeMessage(box, message.uid, Buffer.alloc(message.size, 0x61));
}

/** The INBOX of step 0, created in `cache` if it has none; then its state. */
export function inboxOf(cache: BridgeCache): CachedMailbox {
  let inbox = cache.mailbox('INBOX');
  if (inbox === undefined) {
    inbox = {
      name: 'INBOX',
      path: 'INBOX',
      subscribed: true,
      uidValidity: 42,
      uidNext: 1,
      highestModseq: 1,
      messages: Array.from({ length: BASE_MESSAGES }, (_, i) => message(i + 1, 1)),
    };
    for (const m of inbox.messages) store(cache, inbox, m);
    cache.mailboxes.push(inbox);
  }
  return inbox;
}

/** The last step whose changes `inbox` holds (its UIDNEXT tells). */
export function stepOf(inbox: CachedMailbox): number {
  return Math.max(0, inbox.uidNext - 1001);
}

/** Makes step `s` on `inbox`. */
export function applyStep(cache: BridgeCache, inbox: CachedMailbox, s: number): void {
  const target = inbox.messages.find((m) => m.uid === ((s - 1) % BASE_MESSAGES) + 1)!;
  target.flags = ['$k' + s, '\\Seen'];
  target.modseq = ++inbox.highestModseq;
  const added = message(1000 + s, ++inbox.highestModseq);
  store(cache, inbox, added);
  inbox.messages.push(added);
  inbox.uidNext = 1000 + s + 1;
  if (s > 50) {
    inbox.messages = inbox.messages.filter((m) => m.uid !== 950 + s);
    cache.removeMessage(inbox, 950 + s);
    ++inbox.highestModseq;
  }
}

/** UIDs and flags after step `s`, as `uid flags…` lines. */
export function expectedAfter(s: number): string[] {
  const flags = new Map<number, string[]>();
  for (let uid = 1; uid <= BASE_MESSAGES; uid++) flags.set(uid, []);
  for (let step = 1; step <= s; step++) {
    flags.set(((step - 1) % BASE_MESSAGES) + 1, ['$k' + step, '\\Seen']);
    flags.set(1000 + step, []);
    if (step > 50) flags.delete(950 + step);
  }
  return [...flags].sort((a, b) => a[0] - b[0]).map(([uid, f]) => `${uid} ${f.join(' ')}`);
}

export function linesOf(inbox: CachedMailbox): string[] {
  return inbox.messages.map((m) => `${m.uid} ${m.flags.join(' ')}`);
}
