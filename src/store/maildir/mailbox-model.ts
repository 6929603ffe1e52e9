import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError, type Flag, type MailboxEvent, type MessageRecord } from '../backend.js';
import { toStoreError, type Disk } from './disk.js';
import { MAX_KEYWORDS } from './flags.js';
import type { UserIndex } from './index-db.js';
import { writeKeywords } from './keywords.js';
import { MailboxReads } from './mailbox-reads.js';
import { ModseqCounter } from './modseq.js';
import { entryPath, scanMailbox, type Entry } from './mailbox-scan.js';
import type { OpenFiles } from './open-files.js';
import type { UidListEntry } from './uidlist.js';
import { UidListFile } from './uidlist-file.js';

/**
 * The model of one mailbox's shared in-process state: the UID map, flags, keywords, who holds
 * \Recent, and the event bus to every open handle. All handles and deliveries for the
 * mailbox go through the single instance, and every mutation runs under its queue, so
 * UIDs are assigned in order and events follow the disk. Files and dovecot-uidlist are
 * the truth; `sync()` reconciles memory with them (new files get UIDs, vanished ones
 * are dropped). The mutations are in mailbox-state.ts (`MailboxState` extends this).
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

export abstract class MailboxModel {
  uidValidity = 0;
  nextUid = 1;
  guid = '';
  deleted = false;
  protected entries = new Map<number, Entry>();
  private sorted: MessageRecord[] | null = null;
  protected keywordList: string[] = [];
  protected pendingRecent = new Set<number>();
  protected readonly subscribers = new Set<StateSubscriber>();
  private queue: Promise<unknown> = Promise.resolve();
  protected readonly uidlist: UidListFile;
  /** Mod-sequences and the expunge log (RFC 7162): see modseq.ts. */
  readonly modseq: ModseqCounter;
  /** Reading messages (byte ranges, structures): see mailbox-reads.ts. */
  readonly reads: MailboxReads;

  constructor(
    protected readonly ctx: StateContext,
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

  protected path(e: Pick<Entry, 'base' | 'sub' | 'foreign' | 'record'>): string {
    return entryPath(this.dir, e, this.keywordList);
  }

  protected entry(uid: number): Entry {
    const e = this.entries.get(uid);
    if (e === undefined) throw new StoreError('no-such-message', `no message with UID ${uid}`);
    return e;
  }

  protected changed(): void {
    this.sorted = null;
  }

  private uidlistEntries(): UidListEntry[] {
    return this.records().map((r) => ({
      uid: r.uid,
      base: (this.entries.get(r.uid) as Entry).base,
    }));
  }

  protected rewriteUidList(): Promise<void> {
    return this.uidlist.rewrite(this, this.uidlistEntries());
  }

  protected appendUidList(lines: UidListEntry[]): Promise<void> {
    return this.uidlist.append(this, lines, () => this.uidlistEntries());
  }

  protected emit(event: MailboxEvent, origin: StateSubscriber | null): void {
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
  protected async ensureKeywords(flags: Flag[]): Promise<void> {
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
}
