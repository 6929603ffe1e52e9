import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  StoreError,
  type AppendResult,
  type Flag,
  type FlagOperation,
  type MessageRecord,
} from '../backend.js';
import { parseStructureYielding } from './structure-parse.js';
import { headerOf, searchFieldsOf } from '../mime/search-fields.js';
import { toStoreError } from './disk.js';
import { applyFlagOperation, normalizeFlags } from './flags.js';
import type { UserIndex } from './index-db.js';
import type { CopiedFile, LinkedFile } from './mailbox-copy.js';
import { MailboxModel, type StateSubscriber } from './mailbox-model.js';
import type { Entry } from './mailbox-scan.js';
import { uniqueBase } from './unique-name.js';

export type { StateContext, StateSubscriber } from './mailbox-model.js';

/**
 * One mailbox's shared in-process state: the model (UID map, flags, keywords, \Recent,
 * subscribers, sync with the disk) is in mailbox-model.ts; this class adds the
 * mutations, each under the mailbox's queue, disk first and memory and events after:
 * deliveries and APPEND (`add`), flag changes, expunge, and both halves of COPY/MOVE
 * (`linkOut` on the source, `adopt` on the destination, see mailbox-copy.ts).
 */
export class MailboxState extends MailboxModel {
  /** Writes a message durably and gives it the next UID. */
  async add(
    bytes: Uint8Array,
    flags: Flag[],
    internalDate: Date | undefined,
  ): Promise<AppendResult> {
    const normalized = normalizeFlags(flags);
    const base = uniqueBase(bytes.length);
    const tmpPath = join(this.dir, 'tmp', base);
    const date = internalDate ?? new Date();
    try {
      await this.ctx.disk.writeNew('write-message', tmpPath, bytes, date);
    } catch (err) {
      throw toStoreError(err);
    }
    const structure = await parseStructureYielding(bytes);
    return this.exclusive(async () => {
      try {
        await this.ensureKeywords(normalized);
        const claimer = [...this.subscribers].find((s) => !s.readOnly);
        const uid = this.nextUid;
        const modseq = await this.modseq.next();
        const entry: Entry = {
          uid,
          base,
          sub: claimer !== undefined || normalized.length > 0 ? 'cur' : 'new',
          foreign: '',
          record: { uid, flags: normalized, internalDate: date, size: bytes.length, modseq },
        };
        await rename(tmpPath, this.path(entry));
        await this.ctx.disk.syncDir(join(this.dir, entry.sub));
        this.nextUid++;
        this.entries.set(uid, entry);
        this.changed();
        await this.appendUidList([{ uid, base }]);
        this.ctx.index.put(this.guid, [
          {
            uid,
            base,
            size: bytes.length,
            internalDate: date.getTime(),
            structure,
            fields: searchFieldsOf(structure, headerOf(structure, bytes)),
          },
        ]);
        if (claimer !== undefined) claimer.claimRecent([uid]);
        else this.pendingRecent.add(uid);
        this.emit({ type: 'exists', uids: [uid] }, null);
        return { uidValidity: this.uidValidity, uid };
      } catch (err) {
        throw toStoreError(err);
      }
    }).catch(async (err: unknown) => {
      // never leave the written copy behind (a no-op once it was renamed into place)
      await unlink(tmpPath).catch(() => undefined);
      throw err;
    });
  }

  /**
   * Changes flags; with `unchangedSince` (RFC 7162 §3.1.3) only of messages whose
   * mod-sequence is at most that, the others are returned as `modified`. All changed
   * messages share one new mod-sequence.
   */
  async setFlags(
    uids: number[],
    op: FlagOperation,
    flags: Flag[],
    origin: StateSubscriber | null,
    unchangedSince?: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }> {
    const normalized = normalizeFlags(flags);
    return this.exclusive(async () => {
      try {
        if (op !== 'remove') await this.ensureKeywords(normalized);
        const out: MessageRecord[] = [];
        const modified: number[] = [];
        const dirs = new Set<string>();
        let modseq = 0;
        for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
          const e = this.entries.get(uid);
          if (e === undefined) continue;
          if (unchangedSince !== undefined && e.record.modseq > unchangedSince) {
            modified.push(uid);
            continue;
          }
          const next = applyFlagOperation(e.record.flags, op, normalized);
          if (next !== null) {
            const from = this.path(e);
            if (modseq === 0) modseq = await this.modseq.next();
            const updated: Entry = {
              ...e,
              sub: 'cur',
              record: { ...e.record, flags: next, modseq },
            };
            await rename(from, this.path(updated));
            dirs.add(e.sub).add('cur');
            this.entries.set(uid, updated);
            this.changed();
            this.emit({ type: 'flags', uid, flags: next }, origin);
          }
          out.push((this.entries.get(uid) as Entry).record);
        }
        for (const d of dirs) await this.ctx.disk.syncDir(join(this.dir, d));
        return { records: out, modified };
      } catch (err) {
        throw toStoreError(err);
      }
    });
  }

  /** Removes `uids` (all of them when `onlyDeleted` is false, else those flagged \Deleted). */
  remove(
    uids: number[] | undefined,
    onlyDeleted: boolean,
    origin: StateSubscriber | null,
  ): Promise<number[]> {
    return this.exclusive(async () => {
      const candidates =
        uids === undefined ? [...this.entries.keys()] : uids.filter((u) => this.entries.has(u));
      const doomed = [...new Set(candidates)]
        .filter(
          (u) => !onlyDeleted || (this.entries.get(u) as Entry).record.flags.includes('\\Deleted'),
        )
        .sort((a, b) => a - b);
      if (doomed.length === 0) return [];
      let modseq = 0;
      try {
        modseq = await this.modseq.next();
        for (const uid of doomed) {
          const e = this.entry(uid);
          await unlink(this.path(e)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          });
          this.entries.delete(uid);
          this.pendingRecent.delete(uid);
          this.reads.forget([e]);
        }
        this.changed();
        await this.ctx.disk.syncDir(join(this.dir, 'cur'));
        await this.ctx.disk.syncDir(join(this.dir, 'new'));
        await this.rewriteUidList();
      } catch (err) {
        this.uidlist.markDamaged();
        throw toStoreError(err);
      } finally {
        const removed = doomed.filter((u) => !this.entries.has(u));
        this.ctx.index.remove(this.guid, removed);
        if (modseq > 0) this.modseq.recordExpunge(removed, modseq);
      }
      for (const s of this.subscribers) s.dropRecent(doomed);
      this.emit({ type: 'expunge', uids: doomed }, origin);
      return doomed;
    });
  }

  /**
   * Hard-links the file of each message in `uids` (ascending) to a fresh name in
   * `tmpDir`, all under this mailbox's lock, so no expunge or flag rename can take a
   * file away between look-up and link. All or nothing: when one of them is gone
   * (another session expunged it) the links made are removed and the copy fails with
   * `no-such-message`, which IMAP answers NO [EXPUNGEISSUED], as Dovecot does.
   */
  linkOut(uids: number[], tmpDir: string): Promise<LinkedFile[]> {
    return this.exclusive(async () => {
      const wanted = [...new Set(uids)].sort((x, y) => x - y);
      if (wanted.some((u) => !this.entries.has(u)))
        throw new StoreError('no-such-message', 'a message to copy was expunged');
      const linked: LinkedFile[] = [];
      try {
        for (const uid of wanted) {
          const e = this.entry(uid);
          const base = uniqueBase(e.record.size);
          const tmp = join(tmpDir, base);
          await this.ctx.disk.linkOrCopy(this.path(e), tmp);
          const structure = this.ctx.index.structure(this.guid, uid, e.base);
          const fields = this.ctx.index.searchFieldsOf(this.guid, uid, e.base);
          linked.push({ src: uid, base, tmp, record: e.record, structure, fields });
        }
        return linked;
      } catch (err) {
        for (const l of linked) await unlink(l.tmp).catch(() => undefined);
        // the file vanished behind our back (removed outside this process): it is expunged
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw new StoreError('no-such-message', 'a message to copy was removed');
        throw toStoreError(err);
      }
    });
  }

  /** Takes over files already in tmp/ (see mailbox-copy.ts) and assigns UIDs in order. */
  adopt(items: CopiedFile[]): Promise<Array<[number, number]>> {
    return this.exclusive(async () => {
      const pairs: Array<[number, number]> = [];
      let done = 0;
      try {
        await this.ensureKeywords([...new Set(items.flatMap((i) => i.record.flags))]);
        const claimer = [...this.subscribers].find((s) => !s.readOnly);
        const added: number[] = [];
        const rows: Parameters<UserIndex['put']>[1] = [];
        const modseq = items.length > 0 ? await this.modseq.next() : 0;
        for (const item of items) {
          const uid = this.nextUid;
          const entry: Entry = {
            uid,
            base: item.base,
            sub: 'cur',
            foreign: '',
            record: { ...item.record, uid, modseq },
          };
          await rename(item.tmp, this.path(entry));
          done++;
          this.nextUid++;
          this.entries.set(uid, entry);
          pairs.push([item.src, uid]);
          added.push(uid);
          rows.push({
            uid,
            base: item.base,
            size: item.record.size,
            internalDate: item.record.internalDate.getTime(),
            structure: item.structure,
            fields: item.fields,
          });
        }
        this.changed();
        await this.ctx.disk.syncDir(join(this.dir, 'cur'));
        await this.appendUidList(
          pairs.map(([, uid]) => ({ uid, base: (this.entries.get(uid) as Entry).base })),
        );
        this.ctx.index.put(this.guid, rows);
        if (claimer !== undefined) claimer.claimRecent(added);
        else for (const uid of added) this.pendingRecent.add(uid);
        if (added.length > 0) this.emit({ type: 'exists', uids: added }, null);
        return pairs;
      } catch (err) {
        for (const item of items.slice(done)) await unlink(item.tmp).catch(() => undefined);
        this.uidlist.markDamaged();
        throw toStoreError(err);
      }
    });
  }

  /** Marks the mailbox deleted: open handles see every message expunged. */
  markDeleted(): void {
    const uids = [...this.entries.keys()].sort((a, b) => a - b);
    this.deleted = true;
    this.entries.clear();
    this.reads.forgetAll();
    this.changed();
    if (uids.length > 0) this.emit({ type: 'expunge', uids }, null);
    this.ctx.index.dropMailbox(this.guid);
  }
}

/** Creates the cur/new/tmp directories of a mailbox. */
export async function createMaildirDirs(dir: string): Promise<void> {
  for (const sub of ['cur', 'new', 'tmp'])
    await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
}
