import { accessSync, constants, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temporary directory and a function that removes it. */
export function tempDir(prefix = 'recrypt-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * The same on a RAM-backed file system (/dev/shm, tmpfs) where there is one with room for
 * `needBytes` (a container's is often only 64 MiB; each file takes at least a page), else
 * in the usual temporary directory. For tests that write and remove thousands of files,
 * whose time on a disk other tests keep busy is mostly waiting; not for tests about
 * durability.
 */
export function tempDirInMemory(
  prefix = 'recrypt-test-',
  needBytes = 256 * 1024 * 1024,
): { path: string; remove: () => void } {
  let base = tmpdir();
  try {
    accessSync('/dev/shm', constants.W_OK);
    const fs = statfsSync('/dev/shm');
    if (fs.bavail * fs.bsize >= needBytes) base = '/dev/shm';
  } catch {
    // no tmpfs here
  }
  const path = mkdtempSync(join(base, prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
