import { matchSet, type SequenceSet } from '../commands/sequence.js';
import { ImapError } from '../errors.js';
import type { Selected } from '../session.js';

/**
 * The [sequence number, UID] pairs a set names in this session's view. By sequence
 * number a number past the end is a client error (BAD, RFC 3501 §9 seq-number); by
 * UID, UIDs that do not exist are ignored (§6.4.8).
 */
export function resolveSet(
  sel: Selected,
  set: SequenceSet,
  byUid: boolean,
): Array<[number, number]> {
  const uids = sel.tracker.all;
  const out: Array<[number, number]> = [];
  if (byUid) {
    const max = sel.tracker.maxUid;
    uids.forEach((uid, i) => {
      if (matchSet(set, max, uid)) out.push([i + 1, uid]);
    });
    return out;
  }
  const count = uids.length;
  for (const [a, b] of set) {
    if ((a !== -1 && a > count) || (b !== -1 && b > count))
      throw new ImapError('BAD', 'Invalid message sequence number');
    if (count === 0) throw new ImapError('BAD', 'No messages');
  }
  uids.forEach((uid, i) => {
    if (matchSet(set, count, i + 1)) out.push([i + 1, uid]);
  });
  return out;
}
