/**
 * The bridge's local cache on disk (README.md, "Cache at rest"): `state.log` (every
 * mailbox's UIDVALIDITY, UIDs, flags, sizes, dates and mod-sequences, as a sealed
 * append-only journal: state-journal.ts, state-ops.ts) and one sealed file per message
 * under `messages/<mailbox id>/<uidvalidity>.<uid>`, where the mailbox id is a hash of its
 * name so that folder names do not show on disk. Decrypted messages are held in memory
 * only in a byte-bounded LRU.
 *
 * The gateway is the source of truth: the cache only saves fetching and decrypting again.
 * So the state is written after a change has been made upstream, and a kill at any point
 * loses at most work that the next sync redoes (a message file without a state entry is
 * never shown: it is fetched again and overwritten, or removed at the next open,
 * cache-orphans.ts). A save appends only what changed since the last one; the journal is
 * compacted when it outgrows the state it holds.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SpecialUse } from '../store/backend.js';
import { removeOrphanFiles, type ListedMailbox } from './cache-orphans.js';
import { BridgeError } from './errors.js';
import { readSealed, removeFile, SEALED_OVERHEAD, writeSealedUnsynced } from './sealed-file.js';
import { StateJournal } from './state-journal.js';
import { StateBuilder, StateTracker } from './state-ops.js';

/** Which of the three forms of plaintext.ts the cached bytes are. */
export type CachedKind = 'decrypted' | 'not-encrypted' | 'placeholder';

export interface CachedMessage {
  uid: number;
  flags: string[];
  /** INTERNALDATE, ms since the epoch. */
  internalDate: number;
  /** Bytes of the plaintext (what RFC822.SIZE reports). */
  size: number;
  modseq: number;
  kind: CachedKind;
}

export interface CachedMailbox {
  /** The local name ('/' as delimiter). */
  name: string;
  /** The gateway's path for it (its own delimiter). */
  path: string;
  specialUse?: SpecialUse;
  subscribed: boolean;
  /** Equal to the gateway's: local UIDs are the gateway's UIDs (README.md, "UIDs"). */
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  /** The gateway's HIGHESTMODSEQ at the last complete sync, when it offers CONDSTORE. */
  upstreamModseq?: number;
  messages: CachedMessage[];
}

/** The whole-file state of earlier versions (`state.bin`), read once and moved to the journal. */
interface LegacyStateFile {
  version: 1;
  mailboxes: CachedMailbox[];
}

const LEGACY_STATE_NAME = 'state';
const JOURNAL_FILE = 'state.log';
const LEGACY_FILE = 'state.bin';

function mailboxId(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32);
}

/** A byte-bounded LRU of decrypted messages (Map keeps insertion order). */
class ByteLru {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly limit: number) {}

  get(key: string): Buffer | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  set(key: string, value: Buffer): void {
    this.delete(key);
    if (value.length > this.limit / 4) return;
    this.entries.set(key, value);
    this.bytes += value.length;
    for (const [oldKey, old] of this.entries) {
      if (this.bytes <= this.limit) break;
      this.entries.delete(oldKey);
      this.bytes -= old.length;
    }
  }

  delete(key: string): void {
    const value = this.entries.get(key);
    if (value === undefined) return;
    this.entries.delete(key);
    this.bytes -= value.length;
  }
}

/** What the open found on disk and set right (bridge.ts logs it). */
export interface CacheOpenRepairs {
  /** Messages the state listed whose file was missing or short: the sync fetches them again. */
  messagesDropped: number;
  /** Message files the state did not list (cache-orphans.ts). */
  orphanFilesRemoved: number;
}

export class BridgeCache {
  readonly mailboxes: CachedMailbox[];
  readonly repairedAtOpen: CacheOpenRepairs = { messagesDropped: 0, orphanFilesRemoved: 0 };
  private readonly lru: ByteLru;
  /**
   * Files of messages removed since the last save: unlinked only once the journal no longer
   * lists them, so that a crash in between leaves a listed message with its file (the sync
   * expunges it again), never a listed message without one.
   */
  private readonly unlinkAfterSave = new Set<string>();
  /** Mailbox directories emptied by `removeMailboxFiles`: removed after those unlinks. */
  private readonly removeDirAfterSave = new Set<string>();
  private readonly tracker = new StateTracker();
  private saveTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly key: Buffer,
    private journal: StateJournal,
    mailboxes: CachedMailbox[],
    lruBytes: number,
  ) {
    this.mailboxes = mailboxes;
    this.lru = new ByteLru(lruBytes);
  }

  /** Opens (or starts) the cache in `dir` with the key from cache-key.ts. */
  static open(dir: string, key: Buffer, lruBytes = 64 * 1024 * 1024): BridgeCache {
    mkdirSync(join(dir, 'messages'), { recursive: true, mode: 0o700 });
    const builder = new StateBuilder();
    const journalPath = join(dir, JOURNAL_FILE);
    const journal = StateJournal.open(journalPath, key, (ops) => builder.apply(ops));
    if (journal !== null) {
      const cache = new BridgeCache(dir, key, journal, builder.mailboxes(), lruBytes);
      cache.tracker.all(cache.mailboxes, false).commit();
      cache.dropUnwritten();
      cache.removeOrphans();
      return cache;
    }
    const legacy = BridgeCache.readLegacy(dir, key);
    const created = StateJournal.create(journalPath, key, new StateTracker().all(legacy).ops);
    removeFile(join(dir, LEGACY_FILE));
    const cache = new BridgeCache(dir, key, created, legacy, lruBytes);
    cache.tracker.all(cache.mailboxes, false).commit();
    cache.removeOrphans();
    return cache;
  }

  /** The mailboxes of an earlier version's `state.bin`; none without one. */
  private static readLegacy(dir: string, key: Buffer): CachedMailbox[] {
    const plain = readSealed(join(dir, LEGACY_FILE), key, LEGACY_STATE_NAME);
    if (plain === null) return [];
    let parsed: LegacyStateFile;
    try {
      parsed = JSON.parse(plain.toString('utf8')) as LegacyStateFile;
    } catch {
      throw new BridgeError('corrupt-cache', `${dir}/${LEGACY_FILE} is not JSON`);
    }
    if (parsed.version !== 1 || !Array.isArray(parsed.mailboxes))
      throw new BridgeError('corrupt-cache', `${dir}/${LEGACY_FILE} has an unknown layout`);
    // Through the journal's own reader, so its entries are checked as a journal's are.
    const builder = new StateBuilder();
    builder.apply(new StateTracker().all(parsed.mailboxes).ops);
    return builder.mailboxes();
  }

  /**
   * At every open: drops from the state every message whose file is missing or not of its
   * sealed length (message files are not fsynced, so a power loss, even after a clean
   * stop, can lose what the journal lists); the sync fetches them again. One stat per
   * message: tens of milliseconds at 50,000, against an fsync per message written.
   */
  private dropUnwritten(): void {
    let dropped = 0;
    for (const mailbox of this.mailboxes) {
      const dir = join(this.dir, 'messages', mailboxId(mailbox.name));
      const kept = mailbox.messages.filter((message) => {
        const path = join(dir, `${mailbox.uidValidity}.${message.uid}`);
        let size = -1;
        try {
          size = statSync(path).size;
        } catch {
          // missing
        }
        if (size === message.size + SEALED_OVERHEAD) return true;
        removeFile(path);
        return false;
      });
      if (kept.length === mailbox.messages.length) continue;
      dropped += mailbox.messages.length - kept.length;
      mailbox.messages = kept;
      // Below what the gateway said at the last sync: the next round looks again.
      delete mailbox.upstreamModseq;
    }
    this.repairedAtOpen.messagesDropped = dropped;
    if (dropped > 0) this.compact();
  }

  /**
   * At every open, once the state is what the journal holds: removes the message files it
   * does not list (left by a kill between a file and the save naming it, or between a
   * saved expunge and its unlink). One directory listing per mailbox, no file read.
   */
  private removeOrphans(): void {
    const listed = new Map<string, ListedMailbox>();
    for (const mailbox of this.mailboxes) listed.set(mailboxId(mailbox.name), mailbox);
    this.repairedAtOpen.orphanFilesRemoved = removeOrphanFiles(join(this.dir, 'messages'), listed);
  }

  mailbox(name: string): CachedMailbox | undefined {
    return this.mailboxes.find((m) => m.name === name);
  }

  /**
   * Writes what changed since the last save now: one batch appended to the journal (a
   * mailbox whose HIGHESTMODSEQ did not move costs nothing), or a compaction when the
   * journal has outgrown the state.
   */
  saveNow(): void {
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.closed) return;
    const changes = this.tracker.changes(this.mailboxes);
    if (changes.ops.length === 0) {
      // The journal holds the state already (a rename and its undo in one interval).
      this.unlinkRemoved();
      return;
    }
    this.journal.append(changes.ops);
    changes.commit();
    if (this.journal.wantsCompaction) this.compact();
    else this.unlinkRemoved();
  }

  /** Rewrites the journal as the current state alone (a new file renamed over the old). */
  compact(): void {
    const all = this.tracker.all(this.mailboxes);
    this.journal = this.journal.compact(all.ops);
    all.commit();
    this.unlinkRemoved();
  }

  private unlinkRemoved(): void {
    for (const path of this.unlinkAfterSave) removeFile(path);
    this.unlinkAfterSave.clear();
    for (const dir of this.removeDirAfterSave) {
      try {
        rmdirSync(dir);
      } catch {
        // Not empty: the mailbox's name is in use again (its new files stay).
      }
    }
    this.removeDirAfterSave.clear();
  }

  /** Bytes of the state journal on disk. */
  get stateBytes(): number {
    return this.journal.size;
  }

  /** Writes the state soon: many changes in a row (a sync batch, a STORE of many) cost one write. */
  saveSoon(): void {
    if (this.saveTimer !== null || this.closed) return;
    this.saveTimer = setTimeout(() => {
      try {
        this.saveNow();
      } catch {
        // Not saved (a full disk): the tracker still holds the changes, so the next save
        // (the end of every sync round calls saveNow, which reports it) writes them.
      }
    }, 200);
  }

  private messageFile(mailbox: CachedMailbox, uid: number): { path: string; name: string } {
    const id = mailboxId(mailbox.name);
    const file = `${mailbox.uidValidity}.${uid}`;
    return { path: join(this.dir, 'messages', id, file), name: `message ${id}/${file}` };
  }

  writeMessage(mailbox: CachedMailbox, uid: number, bytes: Uint8Array): void {
    mkdirSync(join(this.dir, 'messages', mailboxId(mailbox.name)), {
      recursive: true,
      mode: 0o700,
    });
    const { path, name } = this.messageFile(mailbox, uid);
    this.unlinkAfterSave.delete(path);
    writeSealedUnsynced(path, this.key, name, bytes);
    this.lru.set(path, Buffer.from(bytes));
  }

  /** The plaintext of a cached message; null when its file is gone. */
  readMessage(mailbox: CachedMailbox, uid: number): Buffer | null {
    const { path, name } = this.messageFile(mailbox, uid);
    const cached = this.lru.get(path);
    if (cached !== undefined) return cached;
    const plain = readSealed(path, this.key, name);
    if (plain !== null) this.lru.set(path, plain);
    return plain;
  }

  /** Forgets a message's plaintext now; its file goes at the next save (`unlinkAfterSave`). */
  removeMessage(mailbox: CachedMailbox, uid: number): void {
    const { path } = this.messageFile(mailbox, uid);
    this.lru.delete(path);
    this.unlinkAfterSave.add(path);
  }

  /**
   * Removes every message file of a mailbox (deleted or renamed, or a new UIDVALIDITY
   * upstream) at the next save, as `removeMessage` does: the journal may still list them
   * until then, and a crash in between would drop them at open (a renamed mailbox fetched
   * again, a revoked device's cache emptied). A file written again meanwhile stays.
   */
  removeMailboxFiles(name: string): void {
    const dir = join(this.dir, 'messages', mailboxId(name));
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return;
    }
    for (const file of files) {
      const path = join(dir, file);
      this.lru.delete(path);
      this.unlinkAfterSave.add(path);
    }
    this.removeDirAfterSave.add(dir);
  }

  close(): void {
    if (this.closed) return;
    try {
      this.saveNow();
    } finally {
      this.closed = true;
      this.journal.close();
    }
  }
}
