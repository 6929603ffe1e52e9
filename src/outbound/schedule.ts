/**
 * The worker's schedule: committed job id → time of its next attempt, with the due jobs
 * found through a binary heap, so that a queue of many thousand jobs (a remote down for a
 * day) costs O(log n) per attempt, not a sort. The map is the truth; heap entries whose
 * time no longer matches it are stale and skipped when they reach the top.
 */

type Entry = [at: number, id: string];

export class JobSchedule {
  private readonly times = new Map<string, number>();
  private readonly heap: Entry[] = [];

  get size(): number {
    return this.times.size;
  }

  /** The job's next attempt, undefined when it is not scheduled. */
  timeOf(id: string): number | undefined {
    return this.times.get(id);
  }

  has(id: string): boolean {
    return this.times.has(id);
  }

  ids(): string[] {
    return [...this.times.keys()];
  }

  set(id: string, at: number): void {
    this.times.set(id, at);
    this.push([at, id]);
  }

  delete(id: string): void {
    this.times.delete(id);
  }

  /** Removes and returns up to `max` jobs due at `now`, earliest first, skipping `busy` ones (they stay scheduled). */
  takeDue(now: number, max: number, busy: (id: string) => boolean): string[] {
    const taken: string[] = [];
    const keep: Entry[] = [];
    while (taken.length < max && this.heap.length > 0) {
      const top = this.heap[0]!;
      if (top[0] > now) break;
      this.pop();
      // Stale, or a second entry for the same time (set twice): one job is handed out once.
      if (this.times.get(top[1]) !== top[0] || taken.includes(top[1])) continue;
      if (busy(top[1])) keep.push(top);
      else taken.push(top[1]);
    }
    for (const entry of keep) this.push(entry);
    return taken;
  }

  /** When the earliest job not in `busy` is due; undefined when none is scheduled. */
  nextTime(busy: (id: string) => boolean): number | undefined {
    while (this.heap.length > 0) {
      const [at, id] = this.heap[0]!;
      if (this.times.get(id) === at && !busy(id)) return at;
      if (this.times.get(id) === at) break;
      this.pop();
    }
    // Busy jobs are rare (at most `concurrency`): a scan is fine when one is on top.
    let next: number | undefined;
    for (const [id, at] of this.times)
      if (!busy(id) && (next === undefined || at < next)) next = at;
    return next;
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]![0] <= entry[0]) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]![0] < heap[left]![0] ? right : left;
      if (heap[child]![0] >= last[0]) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}
