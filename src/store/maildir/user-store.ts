import { randomBytes } from 'node:crypto';
import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  StoreError,
  type AppendOptions,
  type AppendResult,
  type MailboxHandle,
  type MailboxInfo,
  type MailboxStatus,
  type SpecialUse,
  type UserStore,
} from '../backend.js';
import { toStoreError } from './disk.js';
import { MaildirMailboxHandle } from './handle.js';
import { copyMessages } from './mailbox-copy.js';
import { createMaildirDirs, type MailboxState } from './mailbox-state.js';
import { diskNameOf, INBOX, nameFromDisk, normalizeMailboxName } from './names.js';
import { readSubscriptions, writeSubscriptions } from './subscriptions.js';
import type { UserContext } from './user-context.js';

/** One user's mailboxes as one session sees them (all sessions share the UserContext). */
export class MaildirUserStore implements UserStore {
  constructor(
    private readonly ctx: UserContext,
    private readonly maxSize: number,
  ) {}

  get user(): string {
    return this.ctx.user;
  }

  private async folderNames(): Promise<string[]> {
    const entries = await readdir(this.ctx.maildir, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory())
      .map((e) => nameFromDisk(e.name))
      .filter((n): n is string => n !== null);
  }

  async listMailboxes(): Promise<MailboxInfo[]> {
    try {
      const subscribed = await readSubscriptions(this.ctx.maildir);
      const real = new Set([INBOX, ...(await this.folderNames())]);
      const all = new Set(real);
      for (const name of real) {
        const levels = name.split('/');
        for (let i = 1; i < levels.length; i++) all.add(levels.slice(0, i).join('/'));
      }
      const out: MailboxInfo[] = [];
      for (const name of [...all].sort()) {
        const info: MailboxInfo = {
          name,
          subscribed: subscribed.has(name),
          noSelect: !real.has(name),
        };
        const use = real.has(name) ? await this.ctx.specialUse(name) : undefined;
        if (use !== undefined) info.specialUse = use;
        out.push(info);
      }
      return out;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async createMailbox(rawName: string, specialUse?: SpecialUse): Promise<void> {
    const name = normalizeMailboxName(rawName);
    return this.ctx.structural(async () => {
      if (await this.ctx.exists(name))
        throw new StoreError('mailbox-exists', 'mailbox already exists');
      try {
        const dir = this.ctx.dirOf(name);
        await createMaildirDirs(dir);
        await writeFile(join(dir, 'maildirfolder'), '', { mode: 0o600 });
        if (specialUse !== undefined) await this.ctx.writeSpecialUse(name, specialUse);
        await this.ctx.disk.syncDir(this.ctx.maildir);
        await this.ctx.state(name); // writes dovecot-uidlist: UIDVALIDITY fixed at creation
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  async deleteMailbox(rawName: string): Promise<void> {
    const name = normalizeMailboxName(rawName);
    if (name === INBOX) throw new StoreError('invalid-name', 'INBOX cannot be deleted');
    return this.ctx.structural(async () => {
      if (!(await this.ctx.exists(name)))
        throw new StoreError('no-such-mailbox', 'no such mailbox');
      for (const state of await this.ctx.loadedUnder(name)) {
        if (state.name !== name) continue;
        await state.exclusive(async () => state.markDeleted());
        this.ctx.forget(name);
      }
      try {
        // rename first so the folder vanishes atomically, then remove at leisure
        const trash = join(this.ctx.home, `deleted-${randomBytes(8).toString('hex')}`);
        await rename(this.ctx.dirOf(name), trash);
        await this.ctx.disk.syncDir(this.ctx.maildir);
        await rm(trash, { recursive: true, force: true });
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  async renameMailbox(rawFrom: string, rawTo: string): Promise<void> {
    const from = normalizeMailboxName(rawFrom);
    const to = normalizeMailboxName(rawTo);
    if (to === INBOX || to === from || to.startsWith(`${from}/`)) {
      throw new StoreError('invalid-name', 'cannot rename to that name');
    }
    return this.ctx.structural(async () => {
      if (!(await this.ctx.exists(from)))
        throw new StoreError('no-such-mailbox', 'no such mailbox');
      if (await this.ctx.exists(to))
        throw new StoreError('mailbox-exists', 'mailbox already exists');
      if (from === INBOX) return this.renameInbox(to);
      try {
        const names = (await this.folderNames()).filter(
          (n) => n === from || n.startsWith(`${from}/`),
        );
        const loaded = await this.ctx.loadedUnder(from);
        for (const old of names) {
          const renamed = to + old.slice(from.length);
          normalizeMailboxName(renamed);
          if (await this.ctx.exists(renamed))
            throw new StoreError('mailbox-exists', 'mailbox already exists');
        }
        for (const old of names) {
          const renamed = to + old.slice(from.length);
          await rename(
            join(this.ctx.maildir, diskNameOf(old)),
            join(this.ctx.maildir, diskNameOf(renamed)),
          );
          const state = loaded.find((s) => s.name === old);
          if (state !== undefined) {
            state.name = renamed;
            state.dir = this.ctx.dirOf(renamed);
            this.ctx.moveKey(old, renamed);
          }
        }
        await this.ctx.disk.syncDir(this.ctx.maildir);
        const subs = await readSubscriptions(this.ctx.maildir);
        const moved = [...subs].filter((n) => n === from || n.startsWith(`${from}/`));
        if (moved.length > 0) {
          for (const n of moved) {
            subs.delete(n);
            subs.add(to + n.slice(from.length));
          }
          await writeSubscriptions(this.ctx.disk, this.ctx.maildir, subs);
        }
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  /** RFC 3501: renaming INBOX moves its messages to the new mailbox and leaves INBOX empty. */
  private async renameInbox(to: string): Promise<void> {
    const dir = this.ctx.dirOf(to);
    await createMaildirDirs(dir);
    await writeFile(join(dir, 'maildirfolder'), '', { mode: 0o600 });
    await this.ctx.disk.syncDir(this.ctx.maildir);
    const inbox = await this.ctx.state(INBOX);
    const dest = await this.ctx.state(to);
    const uids = inbox.records().map((r) => r.uid);
    const pairs = await copyMessages(inbox, uids, dest);
    await inbox.remove(
      pairs.map(([src]) => src),
      false,
      null,
    );
  }

  async setSubscribed(rawName: string, subscribed: boolean): Promise<void> {
    const name = normalizeMailboxName(rawName);
    return this.ctx.structural(async () => {
      try {
        const subs = await readSubscriptions(this.ctx.maildir);
        if (subs.has(name) === subscribed) return;
        if (subscribed) subs.add(name);
        else subs.delete(name);
        await writeSubscriptions(this.ctx.disk, this.ctx.maildir, subs);
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  async subscriptions(): Promise<string[]> {
    try {
      return [...(await readSubscriptions(this.ctx.maildir))].sort();
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async status(name: string): Promise<MailboxStatus> {
    const state = await this.ctx.state(name);
    return {
      ...state.counts(),
      uidNext: state.nextUid,
      uidValidity: state.uidValidity,
      highestModseq: state.modseq.highest,
    };
  }

  async append(name: string, message: Uint8Array, options?: AppendOptions): Promise<AppendResult> {
    if (message.length > this.maxSize)
      throw new StoreError('too-large', 'message exceeds the size limit');
    const state = await this.ctx.state(name);
    return state.add(message, options?.flags ?? [], options?.internalDate);
  }

  async openMailbox(name: string, options: { readOnly: boolean }): Promise<MailboxHandle> {
    const state = await this.ctx.state(name, true);
    const resolve = (dest: string): Promise<MailboxState> => this.ctx.state(dest);
    const handle = new MaildirMailboxHandle(state, options.readOnly, resolve);
    await state.attach(handle);
    return handle;
  }
}
