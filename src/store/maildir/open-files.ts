import { closeSync, open, read } from 'node:fs';

/**
 * Message files kept open between reads: one store-wide LRU, bounded in descriptors.
 * Clients fetch large messages in chunks (`BODY[]<start.len>`, 64 KiB for Thunderbird),
 * and opening and closing the file around every chunk cost two thread-pool round trips
 * each; a file stays open only after a read that stopped short of its end.
 *
 * A descriptor names the inode, not the path, and Maildir messages never change, so a
 * flag change or a mailbox RENAME (which rename the file or its directory) does not make
 * a cached descriptor stale. The owner (one mailbox) drops entries on expunge, rescan,
 * delete and when its last handle closes, so an expunged file's space is freed and no
 * descriptor outlives the message it was opened for. A descriptor in use by a read is
 * closed only after that read, so its number is never reused under a read.
 */

interface Slot {
  readonly owner: number;
  /** Resolves to the descriptor; rejects if the open failed (the slot is then gone). */
  readonly fd: Promise<number>;
  /** The descriptor once open, so an idle slot is closed at once rather than a tick later. */
  opened: number | null;
  users: number;
  dropped: boolean;
}

export interface OpenFileLease {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Ends this use; `keep` leaves the file open for the next read of the same message. */
  release(keep: boolean): void;
}

/** Descriptors kept when no limit is given (the cache never holds more than this). */
export const DEFAULT_OPEN_FILES = 64;

export class OpenFiles {
  private readonly slots = new Map<string, Slot>();
  private owners = 0;
  private closed = false;

  constructor(private readonly limit = DEFAULT_OPEN_FILES) {}

  /** A new owner id: keys are per owner, so two mailboxes never share an entry. */
  newOwner(): number {
    return ++this.owners;
  }

  /** How many descriptors are cached (not counting dropped ones a read still uses). */
  get size(): number {
    return this.slots.size;
  }

  /** Whether a descriptor is cached (or being opened) for `owner`/`key`. */
  has(owner: number, key: string): boolean {
    return this.slots.has(`${owner}\u0000${key}`);
  }

  /** Opens `path` (or reuses the descriptor cached under `owner`/`key`) for one read. */
  async lease(owner: number, key: string, path: string): Promise<OpenFileLease> {
    const id = `${owner}\u0000${key}`;
    let slot = this.slots.get(id);
    if (slot !== undefined) {
      this.slots.delete(id); // re-insert: most recently used last
      this.slots.set(id, slot);
    } else {
      const fresh: Slot = {
        owner,
        fd: openForReading(path),
        opened: null,
        users: 0,
        dropped: this.closed,
      };
      fresh.fd.then(
        (fd) => (fresh.opened = fd),
        () => undefined,
      );
      slot = fresh;
      if (!this.closed) {
        this.slots.set(id, slot);
        this.evict();
      }
    }
    slot.users++;
    let fd: number;
    try {
      fd = await slot.fd;
    } catch (err) {
      slot.users--;
      this.drop(id, slot);
      throw err;
    }
    const used = slot;
    let released = false;
    return {
      read: (buffer, offset, length, position) => readAt(fd, buffer, offset, length, position),
      release: (keep) => {
        if (released) return;
        released = true;
        used.users--;
        if (!keep || this.closed) this.drop(id, used);
        else this.closeIfIdle(used);
      },
    };
  }

  /** Closes the descriptors of `keys` (messages expunged) of `owner`. */
  forget(owner: number, keys: Iterable<string>): void {
    for (const key of keys) {
      const id = `${owner}\u0000${key}`;
      const slot = this.slots.get(id);
      if (slot !== undefined) this.drop(id, slot);
    }
  }

  /** Closes every descriptor of `owner` (mailbox deleted or no longer open). */
  forgetOwner(owner: number): void {
    for (const [id, slot] of [...this.slots]) if (slot.owner === owner) this.drop(id, slot);
  }

  /** Closes everything; later leases open and close their file each time. */
  closeAll(): void {
    this.closed = true;
    for (const [id, slot] of [...this.slots]) this.drop(id, slot);
  }

  private evict(): void {
    for (const [id, slot] of this.slots) {
      if (this.slots.size <= this.limit) return;
      this.drop(id, slot);
    }
  }

  private drop(id: string, slot: Slot): void {
    if (this.slots.get(id) === slot) this.slots.delete(id);
    slot.dropped = true;
    this.closeIfIdle(slot);
  }

  private closeIfIdle(slot: Slot): void {
    if (!slot.dropped || slot.users !== 0) return;
    slot.users = -1; // closed once, even if dropped again
    if (slot.opened !== null) closeQuietly(slot.opened);
    else slot.fd.then(closeQuietly, () => undefined);
  }
}

/**
 * Closing a read-only descriptor writes nothing back, so it is done here rather than
 * paying a thread-pool round trip; an error leaves nothing to recover.
 */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // the descriptor is gone either way
  }
}

// Callback fs calls on raw descriptors: cheaper per call than fs/promises FileHandles.
function openForReading(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => (err === null ? resolve(fd) : reject(err)));
  });
}

function readAt(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, bytesRead) =>
      err === null ? resolve(bytesRead) : reject(err),
    );
  });
}
