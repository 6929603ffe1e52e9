import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Disk } from './disk.js';

/**
 * Mod-sequences (RFC 7162) of one mailbox. The index is a throwaway cache, so the only
 * durable number is a limit kept in `<mailbox>/recrypt-modseq`: every mod-sequence ever
 * handed out is below it. Numbers are reserved in blocks of `STEP` (one small atomic
 * write per block, not per STORE). When the mailbox is loaded (process start), every
 * message gets the stored limit as its mod-sequence and the next block is reserved:
 * nothing goes backwards (RFC 7162 §3.1.1 asks only that), at the price of a client
 * with an older HIGHESTMODSEQ seeing every message as changed once.
 *
 * Expunges are remembered in memory with the mod-sequence that removed them (for
 * QRESYNC's VANISHED). Those before the load are unknown: asked for them, `vanished`
 * answers every UID below UIDNEXT that is not present, which RFC 7162 §3.2.5.1 allows.
 */

export const MODSEQ_FILE = 'recrypt-modseq';
const STEP = 1000;

export class ModseqCounter {
  /** HIGHESTMODSEQ: the largest mod-sequence handed out so far. */
  highest = 0;
  /** Mod-sequences at or below this were given at load; expunges before it are unknown. */
  private loadedAt = 0;
  private limit = 0;
  private readonly expunged = new Map<number, number>();

  constructor(
    private readonly disk: Disk,
    private readonly dir: () => string,
  ) {}

  get loaded(): boolean {
    return this.loadedAt > 0;
  }

  /** Reads the stored limit, reserves the next block; returns the mod-sequence every message gets. */
  async load(): Promise<number> {
    let stored = 1;
    try {
      const n = Number((await readFile(join(this.dir(), MODSEQ_FILE), 'utf8')).trim());
      if (Number.isSafeInteger(n) && n > 0) stored = n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await this.reserve(stored + 1);
    this.highest = stored;
    this.loadedAt = stored;
    return stored;
  }

  /** The next mod-sequence, reserving a new block on disk first when needed. */
  async next(): Promise<number> {
    const m = this.highest + 1;
    if (m >= this.limit) await this.reserve(m + 1);
    this.highest = m;
    return m;
  }

  recordExpunge(uids: number[], modseq: number): void {
    for (const uid of uids) this.expunged.set(uid, modseq);
  }

  /**
   * UIDs expunged after `since`, as ascending ranges: exact when `since` is at or after
   * the load, else every gap below `uidNext` between the `present` UIDs (ascending).
   */
  vanished(since: number, uidNext: number, present: readonly number[]): Array<[number, number]> {
    if (since >= this.loadedAt) {
      const uids = [...this.expunged]
        .filter(([, m]) => m > since)
        .map(([uid]) => uid)
        .sort((a, b) => a - b);
      return uids.map((u) => [u, u]);
    }
    const out: Array<[number, number]> = [];
    let from = 1;
    for (const uid of [...present, uidNext]) {
      if (uid > from) out.push([from, uid - 1]);
      from = uid + 1;
    }
    return out;
  }

  private async reserve(atLeast: number): Promise<void> {
    const limit = atLeast + STEP;
    await this.disk.replaceFile(join(this.dir(), MODSEQ_FILE), `${limit}\n`);
    this.limit = limit;
  }
}
