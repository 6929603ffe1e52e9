/**
 * Message files that no state entry names, removed when the cache opens (README.md,
 * "Cache at rest"). A kill leaves them: between writing a new message's file and saving
 * the journal that lists it, between saving an expunge and unlinking the file, in the
 * middle of a rename (the new name's directory half written), or during a write (its
 * temporary file). Each is sealed, so harmless, but nothing else would ever remove them.
 *
 * Bounded for a large cache: one listing per mailbox directory, no file opened or
 * stat'ed. Only names the cache writes are touched; anything else under `messages/` is
 * left as it is.
 */
import { readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** A mailbox's directory: the hash of its name (cache.ts). */
const MAILBOX_DIR = /^[0-9a-f]{32}$/;
/** A message file: `<uidvalidity>.<uid>` (cache.ts). */
const MESSAGE_FILE = /^\d+\.\d+$/;
/** A message file being written: `<uidvalidity>.<uid>.tmp-<pid>` (sealed-file.ts). */
const TEMP_FILE = /^\d+\.\d+\.tmp-(\d+)$/;

/** What the state lists of one mailbox (structurally a CachedMailbox). */
export interface ListedMailbox {
  uidValidity: number;
  messages: ReadonlyArray<{ uid: number }>;
}

/**
 * Removes under `messagesDir` every message file not listed in `listed` (keyed by mailbox
 * directory name), a temporary file only once its writer is gone, and a mailbox directory
 * left empty that no mailbox names. Returns how many files were removed.
 */
export function removeOrphanFiles(
  messagesDir: string,
  listed: ReadonlyMap<string, ListedMailbox>,
): number {
  let removed = 0;
  for (const dirName of namesIn(messagesDir)) {
    if (!MAILBOX_DIR.test(dirName)) continue;
    const dir = join(messagesDir, dirName);
    const mailbox = listed.get(dirName);
    const named = new Set(mailbox?.messages.map((m) => `${mailbox.uidValidity}.${m.uid}`));
    for (const file of namesIn(dir)) {
      if (named.has(file)) continue;
      const temp = TEMP_FILE.exec(file);
      const orphan = temp !== null ? writerGone(Number(temp[1])) : MESSAGE_FILE.test(file);
      if (orphan && unlinked(join(dir, file))) removed += 1;
    }
    if (mailbox === undefined) {
      try {
        rmdirSync(dir);
      } catch {
        // Not empty: a file of a live writer, or one the cache did not write.
      }
    }
  }
  return removed;
}

/** The entries of a directory; none when it cannot be listed (a file, gone). */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Unlinks `path`; false when it cannot be (it stays, and the next open tries again). */
function unlinked(path: string): boolean {
  try {
    rmSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the process that wrote a temporary file is gone, so that it will never be
 * renamed. This process writes message files synchronously (write, then rename), so none
 * of its own is half-written while the cache opens: a temporary file with its pid is a
 * failed write's or an earlier process's that had the same pid (a restarted container).
 */
function writerGone(pid: number): boolean {
  if (pid === process.pid) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    // EPERM: the process exists (another user's), so it may still be writing.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
