import { join } from 'node:path';
import type { Disk } from './disk.js';
import { formatEntry, formatUidList, type UidList, type UidListEntry } from './uidlist.js';

type Header = Pick<UidList, 'uidValidity' | 'nextUid' | 'guid'>;

/**
 * Writes one mailbox's dovecot-uidlist: new UIDs are appended (fdatasync'd), anything
 * else rewrites the file atomically. After a failed append the file may end in a partial
 * line, so the next write is a full rewrite.
 */
export class UidListFile {
  private damaged = false;

  constructor(
    private readonly disk: Disk,
    private readonly dir: () => string,
  ) {}

  get needsRewrite(): boolean {
    return this.damaged;
  }

  private get path(): string {
    return join(this.dir(), 'dovecot-uidlist');
  }

  markDamaged(): void {
    this.damaged = true;
  }

  async rewrite(header: Header, entries: UidListEntry[]): Promise<void> {
    await this.disk.replaceFile(this.path, formatUidList(header, entries));
    this.damaged = false;
  }

  /** Appends `lines`; rewrites from `all()` instead when the file is damaged or the batch is large. */
  async append(header: Header, lines: UidListEntry[], all: () => UidListEntry[]): Promise<void> {
    if (this.damaged || lines.length > 1000) return this.rewrite(header, all());
    try {
      await this.disk.append(this.path, lines.map(formatEntry).join(''));
    } catch (err) {
      this.damaged = true;
      throw err;
    }
  }
}
