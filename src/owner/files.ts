/**
 * Files the owner tool writes: a secret is first written in full to a temp file beside
 * its final name (mode 0600, fsynced), and only then moved into place with link(2),
 * which, unlike rename, refuses to replace an existing file. So a crash or a failed
 * upload leaves either no file or the whole file, and never overwrites an owner key or a
 * device's .p12.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OwnerError } from './errors.js';

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function ioError(action: string, path: string, error: unknown): OwnerError {
  const code = (error as NodeJS.ErrnoException).code ?? String(error);
  return new OwnerError('io', `cannot ${action} ${path}: ${code}`);
}

/** Writes `data` to a new hidden temp file next to `finalPath`; returns the temp path. */
export function writeTemp(finalPath: string, data: string | Uint8Array, mode = 0o600): string {
  const temp = join(
    dirname(finalPath),
    `.${basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  let fd: number;
  try {
    fd = openSync(temp, 'wx', mode);
  } catch (error) {
    throw ioError('write', temp, error);
  }
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    discardTemp(temp);
    throw ioError('write', temp, error);
  }
  closeSync(fd);
  return temp;
}

/** Moves a temp file to `finalPath`; OwnerError('exists') if something is already there. */
export function commitTemp(temp: string, finalPath: string): void {
  try {
    linkSync(temp, finalPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new OwnerError('exists', `${finalPath} already exists; not overwriting it`);
    }
    throw ioError('write', finalPath, error);
  }
  discardTemp(temp);
  fsyncDir(dirname(finalPath));
}

/** Moves a temp file over `finalPath` in one step (rename): readers see the old or the new file. */
export function replaceWithTemp(temp: string, finalPath: string): void {
  try {
    renameSync(temp, finalPath);
  } catch (error) {
    discardTemp(temp);
    throw ioError('write', finalPath, error);
  }
  fsyncDir(dirname(finalPath));
}

export function discardTemp(temp: string): void {
  try {
    unlinkSync(temp);
  } catch {
    // Already gone: nothing to clean up.
  }
}
