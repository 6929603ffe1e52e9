/**
 * Rendered ENVELOPE / BODYSTRUCTURE / BODY strings and small header blocks, shared by
 * every session of a server. A stored message never changes (same user, mailbox,
 * UIDVALIDITY and UID means the same bytes), so entries never go stale; the cache only
 * saves the index lookup, JSON parse and rendering that make a full-mailbox FETCH
 * ENVELOPE slow, and the file reads that make SEARCH HEADER slow. An LRU bounded in
 * bytes (approximate: string length + header bytes + key).
 */
export type RenderedItem = 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY';

export interface CacheEntry extends Partial<Record<RenderedItem, string>> {
  /** The top-level header bytes (for SEARCH HEADER), when small. */
  header?: Uint8Array;
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
    64
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
    entry[item] = value;
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
