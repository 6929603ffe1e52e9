/**
 * Rendered ENVELOPE / BODYSTRUCTURE / BODY strings, small header blocks and SORT/THREAD
 * keys, shared by every session of a server. A stored message never changes (same user,
 * mailbox, UIDVALIDITY and UID means the same bytes), so entries never go stale; the
 * cache only saves the index lookup, JSON parse and rendering that make a full-mailbox
 * FETCH ENVELOPE, SORT or THREAD slow, and the file reads that make SEARCH HEADER slow.
 * An LRU bounded in bytes (approximate: string length + header bytes + key).
 */
import type { BaseSubject } from '../handlers/base-subject.js';

export type RenderedItem = 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY';

/** What SORT and THREAD compare of a message's envelope (RFC 5256), derived once. */
export interface SortKeys {
  /** RFC 5256 "sent date": the Date header in UTC, or INTERNALDATE when it has none that parses. */
  sent: number;
  subject: BaseSubject;
  /** The base subject under i;ascii-casemap, as SUBJECT sorts and threads compare it. */
  subjectKey: string;
  from: string;
  to: string;
  cc: string;
  messageId: string | null;
  inReplyTo: string | null;
}

export interface CacheEntry extends Partial<Record<RenderedItem, string>> {
  /** The top-level header bytes (for SEARCH HEADER), when small. */
  header?: Uint8Array;
  /** SORT / THREAD keys from the envelope. */
  sortKeys?: SortKeys;
  /** The top-level References ids (THREAD REFERENCES). */
  references?: string[];
}

/** Headers larger than this are not kept: SEARCH reads them from disk again. */
export const MAX_CACHED_HEADER = 4096;

function sizeOf(key: string, e: CacheEntry): number {
  return (
    key.length +
    (e.ENVELOPE?.length ?? 0) +
    (e.BODYSTRUCTURE?.length ?? 0) +
    (e.BODY?.length ?? 0) +
    (e.header?.length ?? 0) +
    (e.sortKeys === undefined ? 0 : sortKeysSize(e.sortKeys)) +
    (e.references?.reduce((n, id) => n + id.length + 16, 0) ?? 0) +
    64
  );
}

function sortKeysSize(k: SortKeys): number {
  return (
    k.subject.base.length +
    k.subjectKey.length +
    k.from.length +
    k.to.length +
    k.cc.length +
    (k.messageId?.length ?? 0) +
    (k.inReplyTo?.length ?? 0) +
    96
  );
}

export class RenderCache {
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  static key(user: string, mailbox: string, uidValidity: number, uid: number): string {
    return `${user}\u0000${mailbox}\u0000${uidValidity}\u0000${uid}`;
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.map.size, bytes: this.bytes };
  }

  get(key: string): CacheEntry | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set<K extends keyof CacheEntry>(key: string, item: K, value: NonNullable<CacheEntry[K]>): void {
    if (this.maxBytes <= 0) return;
    const entry = this.map.get(key) ?? {};
    if (this.map.has(key)) this.bytes -= sizeOf(key, entry);
    // a view into a larger buffer (a slab of reads, a whole message) would keep all of it alive
    entry[item] =
      value instanceof Uint8Array && value.byteLength !== value.buffer.byteLength
        ? (new Uint8Array(value) as unknown as NonNullable<CacheEntry[K]>)
        : value;
    this.map.delete(key);
    this.map.set(key, entry);
    this.bytes += sizeOf(key, entry);
    while (this.bytes > this.maxBytes && this.map.size > 0) {
      const [oldestKey, oldest] = this.map.entries().next().value as [string, CacheEntry];
      this.map.delete(oldestKey);
      this.bytes -= sizeOf(oldestKey, oldest);
    }
  }
}
