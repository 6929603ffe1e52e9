import { StoreError, type MessageRecord } from '../backend.js';
import { parseStructureYielding } from './structure-parse.js';
import type { MessageStructure } from '../mime/types.js';
import {
  headerOf,
  searchFieldsOf,
  type SearchField,
  type SearchFields,
} from '../mime/search-fields.js';
import { toStoreError } from './disk.js';
import type { UserIndex } from './index-db.js';
import type { OpenFiles } from './open-files.js';
import { quickRead, quickReadAllowed } from './quick-read.js';

/**
 * Reading one mailbox's messages: byte ranges through the store-wide open-file cache
 * (see open-files.ts) and MIME structures through the index, parsing a message only
 * when the index lacks it. Entries are keyed by UID and base name, so an entry never
 * serves a different message; the mailbox calls `forget` / `forgetAll` when messages
 * or the whole mailbox go away, and when its last handle closes (a rescan, which may
 * renumber, only happens with no handle open, so nothing is cached then).
 */

export interface ReadableMessage {
  base: string;
  record: MessageRecord;
}

export interface MessageSource {
  guid(): string;
  /** The message as it is now; throws StoreError('no-such-message') once it is gone. */
  message(uid: number): ReadableMessage;
  /** Its file's current path (flag changes rename it). */
  pathOf(uid: number): string;
}

const keyOf = (uid: number, base: string): string => `${uid}\u0000${base}`;

export class MailboxReads {
  private readonly owner: number;

  constructor(
    private readonly files: OpenFiles,
    private readonly index: UserIndex,
    private readonly source: MessageSource,
  ) {
    this.owner = files.newOwner();
  }

  /** `length` bytes at `start` of message `uid` (clamped to the message), or all of it. */
  async read(uid: number, range?: { start: number; length: number }): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const { base, record } = this.source.message(uid);
      const start = Math.min(Math.max(0, range?.start ?? 0), record.size);
      const length = Math.min(Math.max(0, range?.length ?? record.size), record.size - start);
      try {
        const key = keyOf(uid, base);
        // a read that ends the message keeps no descriptor: small ones need no thread pool
        if (
          attempt === 0 &&
          start + length === record.size &&
          quickReadAllowed(length) &&
          !this.files.has(this.owner, key)
        ) {
          const bytes = quickRead(this.source.pathOf(uid), start, length);
          if (bytes !== null) return bytes;
          // no file at that path: the thread-pool path below looks again and reports it
        }
        const lease = await this.files.lease(this.owner, key, this.source.pathOf(uid));
        let offset = 0;
        const out = Buffer.alloc(length); // zeroed, as before: a short read leaves no uninitialised memory behind the view
        try {
          while (offset < length) {
            const bytesRead = await lease.read(out, offset, length - offset, start + offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
          }
        } finally {
          // a read that stopped before the end is likely followed by the next chunk
          lease.release(offset > 0 && start + offset < record.size);
        }
        return offset === length ? out : out.subarray(0, offset);
      } catch (err) {
        if (err instanceof StoreError) throw err;
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toStoreError(err);
        // a concurrent flag change renamed the file between lookup and open: look again
        if (attempt < 2) continue;
        // still no file: removed behind our back (by hand, or a Dovecot on the same tree),
        // which for IMAP is an expunge, as Dovecot treats a vanished Maildir file
        throw new StoreError('no-such-message', `the file of UID ${uid} is gone`);
      }
    }
  }

  async structure(uid: number): Promise<MessageStructure> {
    const { base, record } = this.source.message(uid);
    const cached = this.index.structure(this.source.guid(), uid, base);
    if (cached !== null) return cached;
    const bytes = await this.read(uid);
    const structure = await parseStructureYielding(bytes);
    this.index.put(this.source.guid(), [
      {
        uid,
        base,
        size: record.size,
        internalDate: record.internalDate.getTime(),
        structure,
        fields: searchFieldsOf(structure, headerOf(structure, bytes)),
      },
    ]);
    return structure;
  }

  /**
   * What SEARCH compares of many messages' headers (see ../mime/search-fields.ts): the
   * indexed ones in one query; a message without them (indexed before they existed, or
   * its row lost) has its header read once and its fields stored. Messages already gone
   * are left out. Only the fields named in `wanted` are sure to be filled.
   */
  async searchFields(
    uids: number[],
    wanted: ReadonlyArray<SearchField>,
  ): Promise<Map<number, SearchFields>> {
    const bases = this.bases(uids);
    const sorted = [...bases.keys()].sort((a, b) => a - b);
    const out = this.index.searchFields(this.source.guid(), sorted, bases, wanted);
    const filled: Array<{ uid: number; base: string; fields: SearchFields }> = [];
    for (const uid of sorted) {
      if (out.has(uid)) continue;
      try {
        const structure = await this.structure(uid);
        const header = await this.read(uid, {
          start: structure.root.header.start,
          length: structure.root.header.end - structure.root.header.start,
        });
        const fields = searchFieldsOf(structure, header);
        filled.push({ uid, base: bases.get(uid) as string, fields });
        out.set(uid, fields);
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'no-such-message')) throw err;
      }
    }
    if (filled.length > 0) this.index.putSearchFields(this.source.guid(), filled);
    return out;
  }

  /** The current base names of those of `uids` that still exist. */
  private bases(uids: number[]): Map<number, string> {
    const bases = new Map<number, string>();
    for (const uid of uids) {
      try {
        bases.set(uid, this.source.message(uid).base);
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'no-such-message')) throw err;
      }
    }
    return bases;
  }

  /**
   * The structures of many messages (SEARCH, SORT, THREAD): the indexed ones in one
   * query, the rest parsed one by one as `structure` does. Messages already gone are
   * left out of the map.
   */
  async structures(uids: number[]): Promise<Map<number, MessageStructure>> {
    const bases = this.bases(uids);
    const wanted = [...bases.keys()].sort((a, b) => a - b);
    const out = this.index.structures(this.source.guid(), wanted, bases);
    for (const uid of wanted) {
      if (out.has(uid)) continue;
      try {
        out.set(uid, await this.structure(uid));
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'no-such-message')) throw err;
      }
    }
    return out;
  }

  /** Closes what is cached for these messages (expunged). */
  forget(messages: Array<{ uid: number; base: string }>): void {
    this.files.forget(
      this.owner,
      messages.map((m) => keyOf(m.uid, m.base)),
    );
  }

  /** Closes what is cached for this mailbox (deleted, or no handle open). */
  forgetAll(): void {
    this.files.forgetOwner(this.owner);
  }
}
