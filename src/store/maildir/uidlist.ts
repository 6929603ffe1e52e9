/**
 * Dovecot's `dovecot-uidlist` (version 3): a header `3 V<uidvalidity> N<nextuid> G<guid>`
 * then one `<uid> :<base file name>` line per message, ascending. New messages are
 * appended (fdatasync'd) like Dovecot does; removals rewrite the file atomically. A torn
 * last line (crash during append) is ignored on read and the file is then rewritten.
 */

export interface UidListEntry {
  uid: number;
  base: string;
}

export interface UidList {
  uidValidity: number;
  nextUid: number;
  /** Mailbox GUID (32 hex digits); the index keys its rows by it, so it survives RENAME. */
  guid: string;
  entries: UidListEntry[];
  /** True when the file ended in a partial line or had unreadable lines: rewrite it. */
  damaged: boolean;
}

export function parseUidList(text: string): UidList | null {
  const lines = text.split('\n');
  const last = lines.pop();
  let damaged = last !== undefined && last.length > 0;
  const header = lines.shift();
  if (header === undefined) return null;
  const fields = header.trim().split(/\s+/);
  if (fields[0] !== '3' && fields[0] !== '1') return null;
  let uidValidity = 0;
  let nextUid = 1;
  let guid = '';
  for (const f of fields.slice(1)) {
    if (f.startsWith('V')) uidValidity = Number(f.slice(1));
    else if (f.startsWith('N')) nextUid = Number(f.slice(1));
    else if (f.startsWith('G')) guid = f.slice(1);
  }
  if (fields[0] === '1') {
    uidValidity = Number(fields[1]);
    nextUid = Number(fields[2]);
  }
  if (
    !Number.isSafeInteger(uidValidity) ||
    uidValidity <= 0 ||
    !Number.isSafeInteger(nextUid) ||
    nextUid < 1
  ) {
    return null;
  }
  const entries: UidListEntry[] = [];
  let previous = 0;
  for (const line of lines) {
    const m = /^(\d+)(?:\s[^:]*)?\s:?(\S+)$/.exec(line) ?? /^(\d+) :(.+)$/.exec(line);
    const uid = m === null ? NaN : Number(m[1]);
    if (m === null || !Number.isSafeInteger(uid) || uid <= previous) {
      damaged = true;
      continue;
    }
    // some writers record the full file name: the base is what precedes the ':2,' info
    entries.push({ uid, base: (m[2] as string).split(':')[0] as string });
    previous = uid;
  }
  nextUid = Math.max(nextUid, previous + 1);
  return { uidValidity, nextUid, guid, entries, damaged };
}

export function formatHeader(list: Pick<UidList, 'uidValidity' | 'nextUid' | 'guid'>): string {
  return `3 V${list.uidValidity} N${list.nextUid} G${list.guid}\n`;
}

export function formatEntry(entry: UidListEntry): string {
  return `${entry.uid} :${entry.base}\n`;
}

export function formatUidList(
  list: Pick<UidList, 'uidValidity' | 'nextUid' | 'guid'>,
  entries: Iterable<UidListEntry>,
): string {
  let out = formatHeader(list);
  for (const e of entries) out += formatEntry(e);
  return out;
}
