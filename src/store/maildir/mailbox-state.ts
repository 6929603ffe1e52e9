import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  StoreError,
  type AppendResult,
  type Flag,
  type FlagOperation,
  type MailboxEvent,
  type MessageRecord,
} from '../backend.js';
import { parseStructureYielding } from './structure-parse.js';
import { headerOf, searchFieldsOf } from '../mime/search-fields.js';
import { toStoreError, type Disk } from './disk.js';
import { applyFlagOperation, normalizeFlags, MAX_KEYWORDS } from './flags.js';
import type { UserIndex } from './index-db.js';
import { writeKeywords } from './keywords.js';
import type { CopiedFile, LinkedFile } from './mailbox-copy.js';
import { MailboxReads } from './mailbox-reads.js';
import { ModseqCounter } from './modseq.js';
import { entryPath, scanMailbox, type Entry } from './mailbox-scan.js';
import type { OpenFiles } from './open-files.js';
import { uniqueBase } from './unique-name.js';
import type { UidListEntry } from './uidlist.js';
import { UidListFile } from './uidlist-file.js';

/**
 * One mailbox's shared in-process state: the UID map, flags, keywords, who holds
 * \Recent, and the event bus to every open handle. All handles and deliveries for the
 * mailbox go through the single instance, and every mutation runs under its queue, so
 * UIDs are assigned in order and events follow the disk. Files and dovecot-uidlist are
 * the truth; `sync()` reconciles memory with them (new files get UIDs, vanished ones
 * are dropped).
 */

export interface StateSubscriber {
  readonly readOnly: boolean;
  claimRecent(uids: number[]): void;
  dropRecent(uids: number[]): void;
  emit(event: MailboxEvent): void;
}

export interface StateContext {
  disk: Disk;
  index: UserIndex;
  files: OpenFiles;
  /** A UIDVALIDITY never handed out before for this user (see UserContext). */
  newUidValidity(): Promise<number>;
}

export class MailboxState {
  uidValidity = 0;
  nextUid = 1;
  guid = '';
  deleted = false;
  private entries = new Map<number, Entry>();
  private sorted: MessageRecord[] | null = null;
  private keywordList: string[] = [];
  private pendingRecent = new Set<number>();
  private readonly subscribers = new Set<StateSubscriber>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly uidlist: UidListFile;
  /** Mod-sequences and the expunge log (RFC 7162): see modseq.ts. */
  readonly modseq: ModseqCounter;
  /** Reading messages (byte ranges, structures): see mailbox-reads.ts. */
  readonly reads: MailboxReads;

  constructor(
    private readonly ctx: StateContext,
    public name: string,
    public dir: string,
  ) {
    this.uidlist = new UidListFile(ctx.disk, () => this.dir);
    this.modseq = new ModseqCounter(ctx.disk, () => this.dir);
    this.reads = new MailboxReads(ctx.files, ctx.index, {
      guid: () => this.guid,
      message: (uid) => this.entry(uid),
      pathOf: (uid) => this.path(this.entry(uid)),
    });
  }

  /** Runs `fn` after every earlier mutation of this mailbox has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.deleted) throw new StoreError('no-such-mailbox', 'mailbox was deleted');
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  get keywords(): string[] {
    return [...this.keywordList];
  }

  records(): MessageRecord[] {
    this.sorted ??= [...this.entries.values()].sort((a, b) => a.uid - b.uid).map((e) => e.record);
    return this.sorted;
  }

  hasSubscribers(): boolean {
    return this.subscribers.size > 0;
  }

  counts(): { messages: number; recent: number; unseen: number } {
    let unseen = 0;
    for (const e of this.entries.values()) if (!e.record.flags.includes('\\Seen')) unseen++;
    return { messages: this.entries.size, recent: this.pendingRecent.size, unseen };
  }

  private path(e: Pick<Entry, 'base' | 'sub' | 'foreign' | 'record'>): string {
    return entryPath(this.dir, e, this.keywordList);
  }

  private entry(uid: number): Entry {
    const e = this.entries.get(uid);
    if (e === undefined) throw new StoreError('no-such-message', `no message with UID ${uid}`);
    return e;
  }

  private changed(): void {
    this.sorted = null;
  }

  private uidlistEntries(): UidListEntry[] {
    return this.records().map((r) => ({
      uid: r.uid,
      base: (this.entries.get(r.uid) as Entry).base,
    }));
  }

  private rewriteUidList(): Promise<void> {
    return this.uidlist.rewrite(this, this.uidlistEntries());
  }

  private appendUidList(lines: UidListEntry[]): Promise<void> {
    return this.uidlist.append(this, lines, () => this.uidlistEntries());
  }

  private emit(event: MailboxEvent, origin: StateSubscriber | null): void {
    for (const s of this.subscribers) if (s !== origin) s.emit(event);
  }

  /** Reconciles memory with the directory and dovecot-uidlist; (re)loads index rows. */
  sync(): Promise<void> {
    return this.exclusive(async () => {
      try {
        await this.syncLocked();
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  private async syncLocked(): Promise<void> {
    const scan = await scanMailbox(this.dir, this.ctx, this.entries, this.nextUid);
    const gone = [...this.entries.keys()].filter((uid) => !scan.entries.has(uid));
    // files changed behind our back (or all of them, at load) get one new mod-sequence
    const stale = [...scan.entries.values()].filter((e) => e.record.modseq === 0);
    let modseq = this.modseq.loaded ? 0 : await this.modseq.load();
    if (modseq === 0 && (stale.length > 0 || gone.length > 0)) modseq = await this.modseq.next();
    for (const e of stale) e.record.modseq = modseq;
    this.modseq.recordExpunge(gone, modseq);
    this.uidValidity = scan.uidValidity;
    this.nextUid = scan.nextUid;
    this.guid = scan.guid;
    this.keywordList = scan.keywords;
    this.entries = scan.entries;
    this.pendingRecent = new Set(
      [...scan.entries.values()].filter((e) => e.sub === 'new').map((e) => e.uid),
    );
    this.changed();
    if (scan.rewrite || this.uidlist.needsRewrite) await this.rewriteUidList();
    if (gone.length > 0) this.emit({ type: 'expunge', uids: gone }, null);
  }

  /** Adds keywords to dovecot-keywords when new; throws StoreError('limit') past 26. */
  private async ensureKeywords(flags: Flag[]): Promise<void> {
    const missing = flags.filter(
      (f) =>
        !f.startsWith('\\') && !this.keywordList.some((k) => k.toLowerCase() === f.toLowerCase()),
    );
    if (missing.length === 0) return;
    if (this.keywordList.length + missing.length > MAX_KEYWORDS) {
      throw new StoreError('limit', `a mailbox holds at most ${MAX_KEYWORDS} keywords`);
    }
    const next = [...this.keywordList, ...missing];
    await writeKeywords(this.ctx.disk, this.dir, next);
    this.keywordList = next;
  }

  // ---- subscribers (open handles) -------------------------------------------------

  /** Attaches a handle; a read-write handle takes every pending \Recent (moving new/ → cur/). */
  attach(s: StateSubscriber): Promise<void> {
    return this.exclusive(async () => {
      this.subscribers.add(s);
      const uids = [...this.pendingRecent].sort((a, b) => a - b);
      s.claimRecent(uids);
      if (s.readOnly || uids.length === 0) return;
      this.pendingRecent.clear();
      try {
        for (const uid of uids) await this.moveToCur(this.entry(uid));
        await this.ctx.disk.syncDir(join(this.dir, 'cur'));
      } catch {
        // recent already claimed in memory; a file left in new/ is only re-offered as \Recent after restart
      }
    });
  }

  detach(s: StateSubscriber): void {
    this.subscribers.delete(s);
    if (this.subscribers.size === 0) this.reads.forgetAll();
  }

  private async moveToCur(e: Entry): Promise<void> {
    if (e.sub === 'cur') return;
    const from = this.path(e);
    e.sub = 'cur';
    try {
      await rename(from, this.path(e));
    } catch (err) {
      e.sub = 'new';
      throw err;
    }
  }

  // ---- mutations ---------------------------------------------------------------

  /** Writes a message durably and gives it the next UID. */
  async add(
    bytes: Uint8Array,
    flags: Flag[],
    internalDate: Date | undefined,
  ): Promise<AppendResult> {
    const normalized = normalizeFlags(flags);
    const base = uniqueBase(bytes.length);
    const tmpPath = join(this.dir, 'tmp', base);
    const date = internalDate ?? new Date();
    try {
      await this.ctx.disk.writeNew('write-message', tmpPath, bytes, date);
    } catch (err) {
      throw toStoreError(err);
    }
    const structure = await parseStructureYielding(bytes);
    return this.exclusive(async () => {
      try {
        await this.ensureKeywords(normalized);
        const claimer = [...this.subscribers].find((s) => !s.readOnly);
        const uid = this.nextUid;
        const modseq = await this.modseq.next();
        const entry: Entry = {
          uid,
          base,
          sub: claimer !== undefined || normalized.length > 0 ? 'cur' : 'new',
          foreign: '',
          record: { uid, flags: normalized, internalDate: date, size: bytes.length, modseq },
        };
        await rename(tmpPath, this.path(entry));
        await this.ctx.disk.syncDir(join(this.dir, entry.sub));
        this.nextUid++;
        this.entries.set(uid, entry);
        this.changed();
        await this.appendUidList([{ uid, base }]);
        this.ctx.index.put(this.guid, [
          {
            uid,
            base,
            size: bytes.length,
            internalDate: date.getTime(),
            structure,
            fields: searchFieldsOf(structure, headerOf(structure, bytes)),
          },
        ]);
        if (claimer !== undefined) claimer.claimRecent([uid]);
        else this.pendingRecent.add(uid);
        this.emit({ type: 'exists', uids: [uid] }, null);
        return { uidValidity: this.uidValidity, uid };
      } catch (err) {
        throw toStoreError(err);
      }
    }).catch(async (err: unknown) => {
      // never leave the written copy behind (a no-op once it was renamed into place)
      await unlink(tmpPath).catch(() => undefined);
      throw err;
    });
  }

  /**
   * Changes flags; with `unchangedSince` (RFC 7162 §3.1.3) only of messages whose
   * mod-sequence is at most that, the others are returned as `modified`. All changed
   * messages share one new mod-sequence.
   */
  async setFlags(
    uids: number[],
    op: FlagOperation,
    flags: Flag[],
    origin: StateSubscriber | null,
    unchangedSince?: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }> {
    const normalized = normalizeFlags(flags);
    return this.exclusive(async () => {
      try {
        if (op !== 'remove') await this.ensureKeywords(normalized);
        const out: MessageRecord[] = [];
        const modified: number[] = [];
        const dirs = new Set<string>();
        let modseq = 0;
        for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
          const e = this.entries.get(uid);
          if (e === undefined) continue;
          if (unchangedSince !== undefined && e.record.modseq > unchangedSince) {
            modified.push(uid);
            continue;
          }
          const next = applyFlagOperation(e.record.flags, op, normalized);
          if (next !== null) {
            const from = this.path(e);
            if (modseq === 0) modseq = await this.modseq.next();
            const updated: Entry = {
              ...e,
              sub: 'cur',
              record: { ...e.record, flags: next, modseq },
            };
            await rename(from, this.path(updated));
            dirs.add(e.sub).add('cur');
            this.entries.set(uid, updated);
            this.changed();
            this.emit({ type: 'flags', uid, flags: next }, origin);
          }
          out.push((this.entries.get(uid) as Entry).record);
        }
        for (const d of dirs) await this.ctx.disk.syncDir(join(this.dir, d));
        return { records: out, modified };
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  /** Removes `uids` (all of them when `onlyDeleted` is false, else those flagged \Deleted). */
  remove(
    uids: number[] | undefined,
    onlyDeleted: boolean,
    origin: StateSubscriber | null,
  ): Promise<number[]> {
    return this.exclusive(async () => {
      const candidates =
        uids === undefined ? [...this.entries.keys()] : uids.filter((u) => this.entries.has(u));
      const doomed = [...new Set(candidates)]
        .filter(
          (u) => !onlyDeleted || (this.entries.get(u) as Entry).record.flags.includes('\\Deleted'),
        )
        .sort((a, b) => a - b);
      if (doomed.length === 0) return [];
      let modseq = 0;
      try {
        modseq = await this.modseq.next();
        for (const uid of doomed) {
          const e = this.entry(uid);
          await unlink(this.path(e)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          });
          this.entries.delete(uid);
          this.pendingRecent.delete(uid);
          this.reads.forget([e]);
        }
        this.changed();
        await this.ctx.disk.syncDir(join(this.dir, 'cur'));
        await this.ctx.disk.syncDir(join(this.dir, 'new'));
        await this.rewriteUidList();
      } catch (err) {
        this.uidlist.markDamaged();
        throw toStoreError(err);
      } finally {
        const removed = doomed.filter((u) => !this.entries.has(u));
        this.ctx.index.remove(this.guid, removed);
        if (modseq > 0) this.modseq.recordExpunge(removed, modseq);
      }
      for (const s of this.subscribers) s.dropRecent(doomed);
      this.emit({ type: 'expunge', uids: doomed }, origin);
      return doomed;
    });
  }

  /**
   * Hard-links the file of each message in `uids` (ascending) to a fresh name in
   * `tmpDir`, all under this mailbox's lock, so no expunge or flag rename can take a
   * file away between look-up and link. All or nothing: when one of them is gone
   * (another session expunged it) the links made are removed and the copy fails with
   * `no-such-message`, which IMAP answers NO [EXPUNGEISSUED], as Dovecot does.
   */
  linkOut(uids: number[], tmpDir: string): Promise<LinkedFile[]> {
    return this.exclusive(async () => {
      const wanted = [...new Set(uids)].sort((x, y) => x - y);
      if (wanted.some((u) => !this.entries.has(u)))
        throw new StoreError('no-such-message', 'a message to copy was expunged');
      const linked: LinkedFile[] = [];
      try {
        for (const uid of wanted) {
          const e = this.entry(uid);
          const base = uniqueBase(e.record.size);
          const tmp = join(tmpDir, base);
          await this.ctx.disk.linkOrCopy(this.path(e), tmp);
          const structure = this.ctx.index.structure(this.guid, uid, e.base);
          const fields = this.ctx.index.searchFieldsOf(this.guid, uid, e.base);
          linked.push({ src: uid, base, tmp, record: e.record, structure, fields });
        }
        return linked;
      } catch (err) {
        for (const l of linked) await unlink(l.tmp).catch(() => undefined);
        // the file vanished behind our back (removed outside this process): it is expunged
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw new StoreError('no-such-message', 'a message to copy was removed');
        throw toStoreError(err);
      }
    });
  }

  /** Takes over files already in tmp/ (see mailbox-copy.ts) and assigns UIDs in order. */
  adopt(items: CopiedFile[]): Promise<Array<[number, number]>> {
    return this.exclusive(async () => {
      const pairs: Array<[number, number]> = [];
      let done = 0;
      try {
        await this.ensureKeywords([...new Set(items.flatMap((i) => i.record.flags))]);
        const claimer = [...this.subscribers].find((s) => !s.readOnly);
        const added: number[] = [];
        const rows: Parameters<UserIndex['put']>[1] = [];
        const modseq = items.length > 0 ? await this.modseq.next() : 0;
        for (const item of items) {
          const uid = this.nextUid;
          const entry: Entry = {
            uid,
            base: item.base,
            sub: 'cur',
            foreign: '',
            record: { ...item.record, uid, modseq },
          };
          await rename(item.tmp, this.path(entry));
          done++;
          this.nextUid++;
          this.entries.set(uid, entry);
          pairs.push([item.src, uid]);
          added.push(uid);
          rows.push({
            uid,
            base: item.base,
            size: item.record.size,
            internalDate: item.record.internalDate.getTime(),
            structure: item.structure,
            fields: item.fields,
          });
        }
        this.changed();
        await this.ctx.disk.syncDir(join(this.dir, 'cur'));
        await this.appendUidList(
          pairs.map(([, uid]) => ({ uid, base: (this.entries.get(uid) as Entry).base })),
        );
        this.ctx.index.put(this.guid, rows);
        if (claimer !== undefined) claimer.claimRecent(added);
        else for (const uid of added) this.pendingRecent.add(uid);
        if (added.length > 0) this.emit({ type: 'exists', uids: added }, null);
        return pairs;
      } catch (err) {
        for (const item of items.slice(done)) await unlink(item.tmp).catch(() => undefined);
        this.uidlist.markDamaged();
        throw toStoreError(err);
      }
    });
  }

  /** Marks the mailbox deleted: open handles see every message expunged. */
  markDeleted(): void {
    const uids = [...this.entries.keys()].sort((a, b) => a - b);
    this.deleted = true;
    this.entries.clear();
    this.reads.forgetAll();
    this.changed();
    if (uids.length > 0) this.emit({ type: 'expunge', uids }, null);
    this.ctx.index.dropMailbox(this.guid);
  }
}

/** Creates the cur/new/tmp directories of a mailbox. */
export async function createMaildirDirs(dir: string): Promise<void> {
  for (const sub of ['cur', 'new', 'tmp'])
    await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
}
