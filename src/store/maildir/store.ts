/**
 * The embedded store's storage: Maildir++ per user under `root`, laid out as Dovecot
 * reads it (`mail_location = maildir:<root>/%u/Maildir`, layout=maildir++, default
 * dovecot-uidlist / dovecot-keywords / subscriptions files), plus a per-user SQLite
 * index (`<root>/<user>/recrypt-index.sqlite`) that Dovecot ignores. See
 * `src/store/README.md` for the layout and the durability rules.
 *
 * Single process: all sessions and deliveries for a store directory must go through one
 * MaildirStore instance (the in-process locks and event bus are what keep UIDs ordered
 * and sessions informed). No dotlocks are taken against other programs.
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  StoreError,
  type AppendOptions,
  type AppendResult,
  type MailStore,
  type SpecialUse,
  type UserStore,
} from '../backend.js';
import { Disk, toStoreError, type FaultHook } from './disk.js';
import { createMaildirDirs } from './mailbox-state.js';
import { INBOX, validateUserName } from './names.js';
import { OpenFiles } from './open-files.js';
import { writeSubscriptions } from './subscriptions.js';
import { UserContext } from './user-context.js';
import { MaildirUserStore } from './user-store.js';

export interface MaildirStoreOptions {
  /** Data directory; users live in `<root>/<user>/Maildir`. Created if missing. */
  root: string;
  /** Largest message deliver/append accept, in bytes (default 64 MiB); larger → StoreError('too-large'). */
  maxMessageSize?: number;
  /** Test-only fault injection for errors a real disk cannot produce on demand (ENOSPC…). */
  fault?: FaultHook;
}

export const DEFAULT_MAILBOXES: ReadonlyArray<[string, SpecialUse]> = [
  ['Sent', '\\Sent'],
  ['Drafts', '\\Drafts'],
  ['Trash', '\\Trash'],
  ['Junk', '\\Junk'],
  ['Archive', '\\Archive'],
];

class MaildirStore implements MailStore {
  private readonly users = new Map<string, UserContext>();
  private readonly disk: Disk;
  private readonly files = new OpenFiles();
  private readonly maxSize: number;
  private closed = false;

  constructor(
    private readonly root: string,
    options: MaildirStoreOptions,
  ) {
    this.disk = new Disk(options.fault);
    this.maxSize = options.maxMessageSize ?? 64 * 1024 * 1024;
  }

  private context(user: string): UserContext {
    if (this.closed) throw new StoreError('io-error', 'store is closed');
    const name = validateUserName(user);
    let ctx = this.users.get(name);
    if (ctx === undefined) {
      ctx = new UserContext(name, join(this.root, name), this.disk, this.files);
      this.users.set(name, ctx);
    }
    return ctx;
  }

  async userExists(user: string): Promise<boolean> {
    try {
      validateUserName(user);
      await access(join(this.root, user, 'Maildir', 'cur'));
      return true;
    } catch {
      return false;
    }
  }

  async createUser(user: string): Promise<void> {
    const ctx = this.context(user);
    await ctx.structural(async () => {
      try {
        await ctx.ensureHome();
        await createMaildirDirs(ctx.maildir);
        for (const [name, use] of DEFAULT_MAILBOXES) {
          const dir = ctx.dirOf(name);
          await createMaildirDirs(dir);
          await writeFile(join(dir, 'maildirfolder'), '', { mode: 0o600 });
          await ctx.writeSpecialUse(name, use);
        }
        await writeSubscriptions(
          this.disk,
          ctx.maildir,
          new Set([INBOX, ...DEFAULT_MAILBOXES.map(([n]) => n)]),
        );
        await this.disk.syncDir(ctx.maildir);
        await this.disk.syncDir(ctx.home);
        await this.disk.syncDir(this.root);
      } catch (err) {
        throw toStoreError(err);
      }
    });
    // fix each UIDVALIDITY now rather than at first use
    for (const name of [INBOX, ...DEFAULT_MAILBOXES.map(([n]) => n)]) await ctx.state(name);
  }

  async deliver(user: string, message: Uint8Array, options?: AppendOptions): Promise<AppendResult> {
    if (message.length > this.maxSize)
      throw new StoreError('too-large', 'message exceeds the size limit');
    if (!(await this.userExists(user))) throw new StoreError('no-such-user', 'no such user');
    const inbox = await this.context(user).state(INBOX);
    return inbox.add(message, options?.flags ?? [], options?.internalDate);
  }

  async openUser(user: string): Promise<UserStore> {
    if (!(await this.userExists(user))) throw new StoreError('no-such-user', 'no such user');
    return new MaildirUserStore(this.context(user), this.maxSize);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const ctx of this.users.values()) ctx.close();
    this.users.clear();
    this.files.closeAll();
  }
}

/** Opens (creating if needed) a Maildir store under `options.root`. */
export async function createMaildirStore(options: MaildirStoreOptions): Promise<MailStore> {
  await mkdir(options.root, { recursive: true, mode: 0o700 });
  return new MaildirStore(options.root, options);
}
