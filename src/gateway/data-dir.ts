/**
 * The data directory holds the key store, the gateway key, TLS keys, secrets and every
 * user's mail: nobody but the gateway's own user may read it (docs/threat-model.md,
 * "At rest"). Three locks, so that no single forgotten `mode` opens it:
 *
 * 1. the process umask is 077 from start, so every file and directory the gateway or a
 *    library (SQLite's -wal/-shm, smtp-server's socket) creates is 0600 / 0700;
 * 2. each place that creates a file also names its mode;
 * 3. an existing directory (older versions, restored backups, files an operator copied
 *    in) is tightened at start: group and other bits are removed from every file and
 *    directory under it, without following symbolic links out of it.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { StartupError } from './startup-errors.js';

/** Largest Unix socket path on Linux (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

export interface Tightened {
  /** Entries whose mode was changed. */
  changed: number;
  /** Entries looked at. */
  seen: number;
}

/** umask 077, the directory made (0700) or tightened. Call before anything writes to it. */
export function prepareDataDir(dataDir: string): Tightened {
  process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return tightenTree(dataDir);
}

/**
 * Removes group and other permissions from `root` and everything under it. Symbolic
 * links are neither followed nor changed (chmod would change their target, which may lie
 * outside the data directory); each entry is opened with O_NOFOLLOW and changed through
 * its descriptor, so a link swapped in after the look cannot redirect the change.
 */
export function tightenTree(root: string): Tightened {
  const counts: Tightened = { changed: 0, seen: 0 };
  const visit = (path: string, top: boolean): void => {
    // The root itself may be a link an operator made (/var/lib/recrypt → /srv/recrypt).
    const info = top ? null : lstatSync(path, { throwIfNoEntry: false });
    if (info !== null && (info === undefined || !(info.isFile() || info.isDirectory()))) return;
    counts.seen++;
    // Most entries are already right: only those that are not get opened (a large
    // Maildir would otherwise cost three system calls per message at every start).
    const isDirectory =
      info === null || (info.mode & 0o7777) !== wantedMode(info.isDirectory(), info.mode)
        ? tightenOne(path, top, counts)
        : info.isDirectory();
    if (isDirectory) for (const name of readdirSync(path)) visit(join(path, name), false);
  };
  visit(root, true);
  return counts;
}

/** Directories 0700; files keep the owner's bits only (no set-id, group or other). */
function wantedMode(isDirectory: boolean, mode: number): number {
  return isDirectory ? 0o700 : mode & 0o700;
}

/** Tightens one entry through a descriptor; whether it is a directory. */
function tightenOne(path: string, top: boolean, counts: Tightened): boolean {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_RDONLY | constants.O_NONBLOCK | (top ? 0 : constants.O_NOFOLLOW),
    );
  } catch (error) {
    // Vanished meanwhile, or a link swapped in: nothing of ours to tighten.
    if (['ENOENT', 'ELOOP'].includes((error as NodeJS.ErrnoException).code ?? '')) return false;
    throw error;
  }
  try {
    const stat = fstatSync(fd);
    const wanted = wantedMode(stat.isDirectory(), stat.mode);
    if ((stat.mode & 0o7777) !== wanted) {
      fchmodSync(fd, wanted);
      counts.changed++;
    }
    return stat.isDirectory();
  } finally {
    closeSync(fd);
  }
}

/** A socket path from the config (relative to the data directory), checked for length. */
export function unixSocketPath(dataDir: string, configured: string, option: string): string {
  const path = isAbsolute(configured) ? configured : resolve(dataDir, configured);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new StartupError(
      `${option}: ${path} is ${Buffer.byteLength(path)} bytes, longer than a Unix socket path may be (${MAX_SOCKET_PATH}); set ${option} to a shorter absolute path in a directory only the gateway's user can enter`,
    );
  }
  return path;
}
