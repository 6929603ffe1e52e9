import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError, type SpecialUse } from '../backend.js';
import type { Disk } from './disk.js';
import { UserIndex } from './index-db.js';
import { MailboxState } from './mailbox-state.js';
import type { OpenFiles } from './open-files.js';
import { diskNameOf, INBOX, normalizeMailboxName } from './names.js';

/**
 * Everything shared by all sessions of one user: the index database and the registry of
 * loaded mailbox states (one per mailbox, so every handle sees the same UIDs and events).
 * Structural changes (create/delete/rename/subscribe) run one at a time via `structural`.
 */

export const SPECIAL_USE_FILE = 'recrypt-special-use';

export class UserContext {
  readonly maildir: string;
  private index: UserIndex | null = null;
  private readonly states = new Map<string, Promise<MailboxState>>();
  private queue: Promise<unknown> = Promise.resolve();
  private uidValidityQueue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly user: string,
    readonly home: string,
    readonly disk: Disk,
    private readonly files: OpenFiles,
  ) {
    this.maildir = join(home, 'Maildir');
  }

  userIndex(): UserIndex {
    this.index ??= new UserIndex(join(this.home, 'recrypt-index.sqlite'));
    return this.index;
  }

  structural<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  dirOf(name: string): string {
    return name === INBOX ? this.maildir : join(this.maildir, diskNameOf(name));
  }

  async exists(name: string): Promise<boolean> {
    try {
      await access(join(this.dirOf(name), 'cur'));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The loaded state of an existing mailbox (normalises and validates the name). With
   * `rescan` (SELECT/EXAMINE) a mailbox nobody has open is re-read from disk first, so
   * changes other programs made meanwhile are picked up; deliveries and STATUS skip it.
   */
  async state(rawName: string, rescan = false): Promise<MailboxState> {
    const name = normalizeMailboxName(rawName);
    let pending = this.states.get(name);
    if (pending === undefined) {
      if (!(await this.exists(name))) throw new StoreError('no-such-mailbox', 'no such mailbox');
      pending = this.states.get(name);
      if (pending === undefined) {
        const state = new MailboxState(
          {
            disk: this.disk,
            index: this.userIndex(),
            files: this.files,
            newUidValidity: () => this.newUidValidity(),
          },
          name,
          this.dirOf(name),
        );
        pending = state.sync().then(() => state);
        this.states.set(name, pending);
        pending.catch(() => this.states.delete(name));
      }
      return pending;
    }
    const state = await pending;
    if (rescan && !state.hasSubscribers()) await state.sync();
    return state;
  }

  /** States currently loaded for `name` and its children (for rename/delete). */
  async loadedUnder(name: string): Promise<MailboxState[]> {
    const out: MailboxState[] = [];
    for (const [key, pending] of this.states) {
      if (key === name || key.startsWith(`${name}/`)) {
        const state = await pending.catch(() => null);
        if (state !== null) out.push(state);
      }
    }
    return out;
  }

  forget(name: string): void {
    this.states.delete(name);
  }

  /** Re-files a loaded state under its new name after a RENAME. */
  moveKey(oldName: string, newName: string): void {
    const pending = this.states.get(oldName);
    if (pending === undefined) return;
    this.states.delete(oldName);
    this.states.set(newName, pending);
  }

  /**
   * UIDVALIDITY for a new (or re-created) mailbox: the current time in seconds, but always
   * above the last one issued for this user, kept in `dovecot-uidvalidity` (hex) as Dovecot
   * does, so a mailbox deleted and created again within a second still gets a new value.
   */
  newUidValidity(): Promise<number> {
    const run = this.uidValidityQueue.then(async () => {
      const path = join(this.maildir, 'dovecot-uidvalidity');
      const last = parseInt(await readFile(path, 'utf8').catch(() => '0'), 16) || 0;
      const next = Math.max(Math.floor(Date.now() / 1000), last + 1);
      await this.disk.replaceFile(path, next.toString(16));
      return next;
    });
    this.uidValidityQueue = run.catch(() => undefined);
    return run;
  }

  async specialUse(name: string): Promise<SpecialUse | undefined> {
    try {
      const value = (await readFile(join(this.dirOf(name), SPECIAL_USE_FILE), 'utf8')).trim();
      return ['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive'].includes(value)
        ? (value as SpecialUse)
        : undefined;
    } catch {
      return undefined;
    }
  }

  async writeSpecialUse(name: string, use: SpecialUse): Promise<void> {
    await writeFile(join(this.dirOf(name), SPECIAL_USE_FILE), `${use}\n`, { mode: 0o600 });
  }

  async ensureHome(): Promise<void> {
    await mkdir(this.maildir, { recursive: true, mode: 0o700 });
  }

  close(): void {
    this.index?.close();
    this.index = null;
    this.states.clear();
  }
}
