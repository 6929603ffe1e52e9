/**
 * The bridge's local cache on disk (README.md, "Cache at rest"): `state.bin` (every
 * mailbox's UIDVALIDITY, UIDs, flags, sizes, dates and mod-sequences, as sealed JSON) and
 * one sealed file per message under `messages/<mailbox id>/<uidvalidity>.<uid>`, where the
 * mailbox id is a hash of its name so that folder names do not show on disk. Decrypted
 * messages are held in memory only in a byte-bounded LRU.
 *
 * The gateway is the source of truth: the cache only saves fetching and decrypting again.
 * So the state is written after a change has been made upstream, and a kill at any point
 * loses at most work that the next sync redoes (a message file without a state entry is
 * fetched again and overwritten, never shown twice).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SpecialUse } from '../store/backend.js';
import { BridgeError } from './errors.js';
import { readSealed, removeFile, writeSealed } from './sealed-file.js';

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

interface StateFile {
  version: 1;
  mailboxes: CachedMailbox[];
}

const STATE_NAME = 'state';

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

export class BridgeCache {
  readonly mailboxes: CachedMailbox[];
  private readonly lru: ByteLru;
  private saveTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly dir: string,
    private readonly key: Buffer,
    state: StateFile,
    lruBytes: number,
  ) {
    this.mailboxes = state.mailboxes;
    this.lru = new ByteLru(lruBytes);
  }

  /** Opens (or starts) the cache in `dir` with the key from cache-key.ts. */
  static open(dir: string, key: Buffer, lruBytes = 64 * 1024 * 1024): BridgeCache {
    mkdirSync(join(dir, 'messages'), { recursive: true, mode: 0o700 });
    const plain = readSealed(join(dir, 'state.bin'), key, STATE_NAME);
    let state: StateFile = { version: 1, mailboxes: [] };
    if (plain !== null) {
      const parsed = JSON.parse(plain.toString('utf8')) as StateFile;
      if (parsed.version !== 1 || !Array.isArray(parsed.mailboxes))
        throw new BridgeError('corrupt-cache', `${dir}/state.bin has an unknown layout`);
      state = parsed;
    }
    return new BridgeCache(dir, key, state, lruBytes);
  }

  mailbox(name: string): CachedMailbox | undefined {
    return this.mailboxes.find((m) => m.name === name);
  }

  /** Writes the state now (atomic replace). */
  saveNow(): void {
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    const state: StateFile = { version: 1, mailboxes: this.mailboxes };
    writeSealed(
      join(this.dir, 'state.bin'),
      this.key,
      STATE_NAME,
      Buffer.from(JSON.stringify(state), 'utf8'),
    );
  }

  /** Writes the state soon: many changes in a row (a sync batch, a STORE of many) cost one write. */
  saveSoon(): void {
    if (this.saveTimer !== null) return;
    this.saveTimer = setTimeout(() => this.saveNow(), 200);
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
    writeSealed(path, this.key, name, bytes);
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

  removeMessage(mailbox: CachedMailbox, uid: number): void {
    const { path } = this.messageFile(mailbox, uid);
    this.lru.delete(path);
    removeFile(path);
  }

  /** Removes every message file of a mailbox (deleted, or a new UIDVALIDITY upstream). */
  removeMailboxFiles(name: string): void {
    const dir = join(this.dir, 'messages', mailboxId(name));
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return;
    }
    for (const file of files) this.lru.delete(join(dir, file));
    rmSync(dir, { recursive: true, force: true });
  }

  close(): void {
    if (this.saveTimer !== null) this.saveNow();
  }
}
