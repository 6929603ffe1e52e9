import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StoreError } from '../backend.js';

/**
 * Durable file operations. Every write that must survive a crash goes through here:
 * data is fsynced before it becomes visible (rename), and the directory is fsynced after
 * so the rename itself survives. `fault` lets tests inject errors the real disk cannot be
 * made to show on demand (ENOSPC, EDQUOT); production passes none.
 */

export type DiskOp = 'write-message' | 'write-meta';
export type FaultHook = (op: DiskOp, path: string) => void;

export function toStoreError(err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new StoreError('over-quota', 'mail store is full');
  return new StoreError(
    'io-error',
    `mail store I/O error${code === undefined ? '' : ` (${code})`}`,
  );
}

export class Disk {
  constructor(private readonly fault?: FaultHook) {}

  check(op: DiskOp, path: string): void {
    this.fault?.(op, path);
  }

  /** Creates `path` (must not exist) with `data`, fsynced; sets mtime when given. Removes it on failure. */
  async writeNew(op: DiskOp, path: string, data: Uint8Array, mtime?: Date): Promise<void> {
    const handle = await open(path, 'wx', 0o600);
    let ok = false;
    try {
      this.check(op, path);
      let offset = 0;
      while (offset < data.length) {
        const { bytesWritten } = await handle.write(data, offset, data.length - offset, offset);
        offset += bytesWritten;
      }
      if (mtime !== undefined) await handle.utimes(mtime, mtime);
      await handle.sync();
      ok = true;
    } finally {
      await handle.close();
      if (!ok) await unlink(path).catch(() => undefined);
    }
  }

  async syncDir(dir: string): Promise<void> {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Replaces `path` atomically: temp sibling, fsync, rename, fsync directory. */
  async replaceFile(path: string, data: string | Uint8Array): Promise<void> {
    const temp = `${path}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    await this.writeNew('write-meta', temp, typeof data === 'string' ? Buffer.from(data) : data);
    try {
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    await this.syncDir(dirname(path));
  }

  /** Hard-links `from` to `to` (how Dovecot copies in Maildir); copies durably when links are impossible. */
  async linkOrCopy(from: string, to: string): Promise<void> {
    try {
      await link(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
      await this.writeNew('write-message', to, await readFile(from), (await stat(from)).mtime);
    }
  }

  /** Appends and fdatasyncs; the caller tolerates a torn last line after a crash. */
  async append(path: string, data: string): Promise<void> {
    const handle = await open(path, 'a', 0o600);
    try {
      this.check('write-meta', path);
      await handle.write(data);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
}
