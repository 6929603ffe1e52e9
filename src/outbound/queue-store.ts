/**
 * The queue directory: every job is a directory holding `message` (the exact bytes) and
 * `meta.json`, so that one rename moves a whole job atomically between states:
 *
 *   tmp/<id>       being written (or being deleted); swept when stale
 *   prepared/<id>  written and fsync'd, not yet committed; the worker never looks here
 *   pending/<id>   committed: the worker delivers these
 *   quarantine/<name>.<ms>  a job that could not be read, moved aside for the operator
 *   flush          a file an operator touches to make every job due now
 *
 * Nothing here knows about SMTP; worker.ts decides what happens to a job.
 */
import { randomBytes } from 'node:crypto';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { JobStore } from './job-store.js';

export const JOB_ID = /^[0-9a-z]{9}-[0-9a-f]{16}$/;

export const jobMetaSchema = z.strictObject({
  version: z.literal(1),
  id: z.string().regex(JOB_ID),
  mailFrom: z.string(),
  to: z.string().min(1),
  origin: z.record(z.string(), z.string()).optional(),
  /** ms since the epoch. */
  created: z.number().int().nonnegative(),
  attempts: z.number().int().nonnegative(),
  nextAttempt: z.number().int().nonnegative(),
  lastError: z.string().optional(),
  /** Checked against the message file, so a truncated job is caught before it is sent. */
  messageBytes: z.number().int().positive(),
});

export type JobMeta = z.infer<typeof jobMetaSchema>;

export interface NewJob {
  mailFrom: string;
  to: string;
  message: Uint8Array;
  origin?: Record<string, string>;
}

export type JobState =
  { kind: 'ok'; meta: JobMeta } | { kind: 'missing' } | { kind: 'corrupt'; reason: string };

/** Ids sort by creation time, so a directory listing is roughly oldest first. */
export function newJobId(now: number): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(8).toString('hex')}`;
}

/** The record of a job queued at `now`, before its first attempt (either store's). */
export function newJobMeta(job: NewJob, now: number): JobMeta {
  return {
    version: 1,
    id: newJobId(now),
    mailFrom: job.mailFrom,
    to: job.to,
    ...(job.origin === undefined ? {} : { origin: job.origin }),
    created: now,
    attempts: 0,
    nextAttempt: now,
    messageBytes: job.message.byteLength,
  };
}

/** The header block of the first bytes of a message (up to the blank line, or the last whole line). */
export function headerBlock(head: Buffer): Buffer {
  const end = head.indexOf('\r\n\r\n');
  if (end >= 0) return head.subarray(0, end + 2);
  const lastLine = head.lastIndexOf('\r\n');
  return lastLine >= 0 ? head.subarray(0, lastLine + 2) : Buffer.alloc(0);
}

async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const handle: FileHandle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

export class QueueStore implements JobStore {
  readonly kind = 'disk' as const;
  /** One gateway process per directory: nothing to claim. */
  readonly shared = false;
  readonly tmp: string;
  readonly prepared: string;
  readonly pending: string;
  readonly quarantine: string;

  private constructor(readonly root: string) {
    this.tmp = join(root, 'tmp');
    this.prepared = join(root, 'prepared');
    this.pending = join(root, 'pending');
    this.quarantine = join(root, 'quarantine');
  }

  static async open(root: string): Promise<QueueStore> {
    const store = new QueueStore(root);
    for (const dir of [root, store.tmp, store.prepared, store.pending, store.quarantine]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    return store;
  }

  messagePath(id: string): string {
    return join(this.pending, id, 'message');
  }

  messageSource(id: string): Promise<{ path: string }> {
    return Promise.resolve({ path: this.messagePath(id) });
  }

  claim(): Promise<boolean> {
    return Promise.resolve(true);
  }

  renew(): Promise<boolean> {
    return Promise.resolve(true);
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  /** The worker's own schedule is the truth for a directory: nothing stored to change. */
  makeAllDue(): Promise<void> {
    return Promise.resolve();
  }

  async countPending(): Promise<number> {
    return (await this.listPending()).length;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Writes every job into tmp/ (files and their directory fsync'd), then renames each into
   * `into` and fsyncs both parents: when this resolves the jobs survive a crash.
   */
  async write(jobs: NewJob[], into: 'pending' | 'prepared', now: number): Promise<JobMeta[]> {
    const written: JobMeta[] = [];
    try {
      for (const job of jobs) {
        const meta = newJobMeta(job, now);
        const dir = join(this.tmp, meta.id);
        await mkdir(dir, { mode: 0o700 });
        written.push(meta);
        await writeSynced(join(dir, 'message'), job.message);
        await writeSynced(join(dir, 'meta.json'), JSON.stringify(meta));
        await syncDir(dir);
      }
      const target = into === 'pending' ? this.pending : this.prepared;
      for (const meta of written) await rename(join(this.tmp, meta.id), join(target, meta.id));
      await syncDir(this.tmp);
      await syncDir(target);
      return written;
    } catch (error) {
      await Promise.allSettled(
        written.flatMap((meta) => [
          rm(join(this.tmp, meta.id), { recursive: true, force: true }),
          rm(join(this.prepared, meta.id), { recursive: true, force: true }),
          rm(join(this.pending, meta.id), { recursive: true, force: true }),
        ]),
      );
      throw error;
    }
  }

  /** prepared/<id> → pending/<id>. A job already committed is fine (commit is idempotent). */
  async commit(ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        await rename(join(this.prepared, id), join(this.pending, id));
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw error;
        await stat(join(this.pending, id, 'meta.json')).catch(() => {
          throw new Error(
            `outbound job ${id} is neither prepared nor pending (aborted, or swept as stale)`,
          );
        });
      }
    }
    await syncDir(this.prepared);
    await syncDir(this.pending);
  }

  async abort(ids: string[]): Promise<void> {
    for (const id of ids) await rm(join(this.prepared, id), { recursive: true, force: true });
  }

  /** Removes a pending job: one rename out of pending/ (durable), then the files. */
  async remove(id: string): Promise<void> {
    const trash = join(this.tmp, `${id}.done`);
    try {
      await rename(join(this.pending, id), trash);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw error;
    }
    await syncDir(this.pending);
    await rm(trash, { recursive: true, force: true });
  }

  /** Replaces meta.json atomically (write aside, fsync, rename over, fsync the job directory). */
  async update(meta: JobMeta): Promise<void> {
    const dir = join(this.pending, meta.id);
    const aside = join(dir, `meta.json.${randomBytes(4).toString('hex')}`);
    await writeSynced(aside, JSON.stringify(meta));
    await rename(aside, join(dir, 'meta.json'));
    await syncDir(dir);
  }

  /** Names in pending/ (job ids, or junk that read() will call corrupt). */
  async listPending(): Promise<string[]> {
    return (await readdir(this.pending)).filter((name) => !name.startsWith('.'));
  }

  async read(name: string): Promise<JobState> {
    if (!JOB_ID.test(name)) return { kind: 'corrupt', reason: 'not a job id' };
    const dir = join(this.pending, name);
    let text: string;
    try {
      text = await readFile(join(dir, 'meta.json'), 'utf8');
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT')
        return { kind: 'corrupt', reason: `meta.json: ${errnoCode(error)}` };
      const exists = await stat(dir).then(
        () => true,
        () => false,
      );
      return exists ? { kind: 'corrupt', reason: 'no meta.json' } : { kind: 'missing' };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { kind: 'corrupt', reason: 'meta.json is not JSON' };
    }
    const result = jobMetaSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0]!;
      return { kind: 'corrupt', reason: `meta.json: ${issue.path.join('.')}: ${issue.message}` };
    }
    if (result.data.id !== name) return { kind: 'corrupt', reason: 'meta.json names another job' };
    const size = await stat(join(dir, 'message')).then(
      (s) => s.size,
      () => -1,
    );
    if (size !== result.data.messageBytes) {
      return {
        kind: 'corrupt',
        reason:
          size < 0
            ? 'no message file'
            : `message is ${size} bytes, meta.json says ${result.data.messageBytes}`,
      };
    }
    return { kind: 'ok', meta: result.data };
  }

  /** Moves an unreadable entry of pending/ aside; returns where it went. */
  async moveToQuarantine(name: string, now: number): Promise<string> {
    const target = join(this.quarantine, `${name}.${now}`);
    await rename(join(this.pending, name), target);
    await syncDir(this.pending);
    await syncDir(this.quarantine);
    return target;
  }

  /** The original's header block (up to the blank line), at most `limit` bytes, for a DSN. */
  async readHeaders(id: string, limit = 64 * 1024): Promise<Buffer> {
    const handle = await open(this.messagePath(id), 'r');
    try {
      const buffer = Buffer.alloc(limit);
      const { bytesRead } = await handle.read(buffer, 0, limit, 0);
      return headerBlock(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  }

  /**
   * Deletes what an interrupted write or an unfinished prepare left behind, once it is
   * older than `staleMs` (a prepare in progress is younger than that). Returns the names.
   */
  async sweepStale(staleMs: number): Promise<string[]> {
    const swept: string[] = [];
    const cutoff = Date.now() - staleMs;
    for (const dir of [this.tmp, this.prepared]) {
      for (const name of await readdir(dir)) {
        const path = join(dir, name);
        const mtime = await stat(path).then(
          (s) => s.mtimeMs,
          () => Infinity,
        );
        if (mtime < cutoff) {
          await rm(path, { recursive: true, force: true });
          swept.push(`${dir === this.tmp ? 'tmp' : 'prepared'}/${name}`);
        }
      }
    }
    return swept;
  }

  /** What `touch <queue>/flush` does: the running gateway retries every job at its next pass. */
  async requestFlush(): Promise<void> {
    await writeFile(join(this.root, 'flush'), '', { mode: 0o600 });
  }

  /** True once per `touch <queue>/flush` (the file is consumed). */
  async takeFlushRequest(): Promise<boolean> {
    try {
      await unlink(join(this.root, 'flush'));
      return true;
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return false;
      throw error;
    }
  }
}
