/**
 * The local view's `records()` for one mailbox (src/store/backend.ts `MessageRecord`), kept
 * in step with its cached messages change by change: a flag change replaces one record, a
 * new message is appended, an expunge splices (README.md, "Sync"). Rebuilding the whole
 * list after every change cost 35–106 ms at 50,000 messages (a record and a Date each).
 *
 * The store's contract (src/store/README.md, "Contract for the protocol layer") lets a
 * handler keep the array it got while it awaits, so a list already handed out is never
 * changed: the first change after a hand-out copies the array (pointers only, once per
 * hand-out, not per change), later changes edit the copy in place.
 */
import type { MessageRecord } from '../store/backend.js';
import type { CachedMessage } from './cache.js';

/** Index of `uid` in an array ascending by UID, or -(insertion point) - 1 when absent. */
export function searchUid(list: ReadonlyArray<{ uid: number }>, uid: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = list[mid]!.uid;
    if (at === uid) return mid;
    if (at < uid) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}

/**
 * Removes the entries of `gone` (a set of UIDs) from an array ascending by UID, in place.
 * A few are spliced out where a binary search finds them; many cost one compacting pass.
 * Returns the UIDs removed, ascending.
 */
export function removeUids<T extends { uid: number }>(
  list: T[],
  gone: ReadonlySet<number>,
): number[] {
  const removed: number[] = [];
  if (gone.size * 16 < list.length) {
    for (const uid of [...gone].sort((a, b) => a - b)) {
      const at = searchUid(list, uid);
      if (at < 0) continue;
      list.splice(at, 1);
      removed.push(uid);
    }
    return removed;
  }
  let kept = 0;
  for (const entry of list) {
    if (gone.has(entry.uid)) removed.push(entry.uid);
    else list[kept++] = entry;
  }
  list.length = kept;
  return removed;
}

/** Inserts `entry` at its place by UID (new mail, the highest UID, is appended). */
export function insertByUid<T extends { uid: number }>(list: T[], entry: T): void {
  if (list.length === 0 || list[list.length - 1]!.uid < entry.uid) {
    list.push(entry);
    return;
  }
  const at = searchUid(list, entry.uid);
  if (at >= 0) list[at] = entry;
  else list.splice(-at - 1, 0, entry);
}

export function toRecord(message: CachedMessage): MessageRecord {
  return {
    uid: message.uid,
    flags: message.flags,
    internalDate: new Date(message.internalDate),
    size: message.size,
    modseq: message.modseq,
  };
}

export class RecordList {
  private list: MessageRecord[] | null = null;
  /** The messages array the list was built from (a replaced array means a rebuild). */
  private source: CachedMessage[] | null = null;
  private handedOut = false;

  /** The current records, ascending by UID; not changed after it is returned. */
  get(messages: CachedMessage[]): MessageRecord[] {
    if (this.list === null || this.source !== messages) {
      this.list = messages.map(toRecord);
      this.source = messages;
    }
    this.handedOut = true;
    return this.list;
  }

  /** Forgets the list (the messages array was replaced wholesale). */
  clear(): void {
    this.list = null;
    this.source = null;
  }

  /** The list to edit in place, or null when none is built (nothing to keep in step). */
  private editable(): MessageRecord[] | null {
    if (this.list === null) return null;
    if (this.handedOut) {
      this.list = this.list.slice();
      this.handedOut = false;
    }
    return this.list;
  }

  /** `message`'s flags and mod-sequence changed. */
  changed(message: CachedMessage): void {
    const list = this.editable();
    if (list === null) return;
    const at = searchUid(list, message.uid);
    if (at < 0) return this.clear();
    list[at] = { ...list[at]!, flags: message.flags, modseq: message.modseq };
  }

  added(message: CachedMessage): void {
    const list = this.editable();
    if (list !== null) insertByUid(list, toRecord(message));
  }

  removed(gone: ReadonlySet<number>): void {
    const list = this.editable();
    if (list !== null) removeUids(list, gone);
  }
}
