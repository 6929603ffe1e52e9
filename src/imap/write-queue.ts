/**
 * Rows written to the point cache's SQLite file in batches (point-cache.ts,
 * delivered-points.ts, delivered-plans.ts): a commit per row would cost more than the
 * multiplication the row saves, so rows wait here, readable by their id, and are
 * committed in one transaction `delayMs` after the first, or at once when `flushAt` are
 * waiting; every `evictEvery` rows written, `evict` keeps the table within its bound.
 * Off the fetch path, and never in its way: a failing commit loses only its batch
 * (`guard` counts it), and the fetch multiplies as without the cache.
 */
export interface WriteQueueOptions<T> {
  delayMs: number;
  flushAt: number;
  /** Writes one row; runs inside the batch's transaction. */
  write: (entry: T) => void;
  /** Runs `fn` as one transaction (better-sqlite3's `db.transaction(fn)()`). */
  transaction: (fn: () => void) => void;
  /** Runs a SQLite call, counting and swallowing its failure. */
  guard: (fn: () => void) => void;
  evictEvery?: number;
  evict?: () => void;
}

export class WriteQueue<T> {
  private readonly pending = new Map<string, T>();
  private timer: NodeJS.Timeout | undefined;
  private sinceEvict = 0;

  constructor(private readonly options: WriteQueueOptions<T>) {}

  get size(): number {
    return this.pending.size;
  }

  /** A row still waiting to be committed. */
  get(id: string): T | undefined {
    return this.pending.get(id);
  }

  /** Queues a row (replacing one with the same id). */
  put(id: string, entry: T): void {
    this.pending.set(id, entry);
    if (this.pending.size >= this.options.flushAt) this.flush();
    else this.schedule();
  }

  /** Commits within `delayMs` (for writes another queue carries, delivered-plans.ts). */
  schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.flush(), this.options.delayMs);
    this.timer.unref();
  }

  delete(id: string): void {
    this.pending.delete(id);
  }

  /** Drops the waiting rows `match` picks. */
  drop(match: (entry: T) => boolean): void {
    for (const [id, entry] of this.pending) if (match(entry)) this.pending.delete(id);
  }

  clear(): void {
    this.pending.clear();
  }

  /** Commits what waits now, in one transaction; `also` runs first (the same instant). */
  flush(also?: () => void): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (also !== undefined) this.options.guard(also);
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    const { write, transaction, guard, evict, evictEvery } = this.options;
    guard(() =>
      transaction(() => {
        for (const entry of batch) write(entry);
      }),
    );
    this.sinceEvict += batch.length;
    if (evict !== undefined && evictEvery !== undefined && this.sinceEvict >= evictEvery) {
      this.sinceEvict = 0;
      guard(evict);
    }
  }

  /** Stops the timer without committing (the owner flushed or gives up). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
