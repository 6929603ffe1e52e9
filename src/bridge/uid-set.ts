/**
 * A UID set as the gateway answers it (ESEARCH `ALL 1:150,152`, RFC 4731), expanded into
 * its UIDs. The set is the server's to write: a range may name any count, so the
 * expansion stops at `limit` (the mailbox's message count: a mailbox holds no more UIDs
 * than messages) and the caller reports the answer as wrong rather than fill memory.
 */

/** The UIDs of `set`, ascending and once each; null when it is not a UID set or names more than `limit`. */
export function expandUidSet(set: string, limit: number): number[] | null {
  if (set === '') return [];
  const out: number[] = [];
  for (const part of set.split(',')) {
    const match = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(part);
    if (match === null) return null;
    const a = Number(match[1]);
    const b = match[2] === undefined ? a : Number(match[2]);
    const low = Math.min(a, b);
    const high = Math.max(a, b);
    if (low < 1 || high > 0xffff_ffff) return null;
    if (out.length + (high - low + 1) > limit) return null;
    for (let uid = low; uid <= high; uid++) out.push(uid);
  }
  out.sort((x, y) => x - y);
  return out.filter((uid, i) => i === 0 || uid !== out[i - 1]);
}
