import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageRecord } from '../backend.js';
import { parseMessageStructure } from '../mime/structure.js';
import type { MessageStructure } from '../mime/types.js';
import { toStoreError, type Disk } from './disk.js';
import type { MailboxState } from './mailbox-state.js';
import { uniqueBase } from './unique-name.js';

/**
 * COPY/MOVE between mailboxes: each source file is hard-linked (as Dovecot does; a
 * plain durable copy where links are impossible) into the destination's tmp/, then the
 * destination adopts all of them under its own lock, in order. The two mailboxes' locks
 * are never held together, so COPY A→B and B→A cannot deadlock.
 */

export interface CopySource {
  uid: number;
  path: string;
  record: MessageRecord;
  structure: MessageStructure | null;
}

export interface CopiedFile {
  src: number;
  base: string;
  tmp: string;
  record: MessageRecord;
  structure: MessageStructure;
}

export async function copyMessages(
  disk: Disk,
  source: MailboxState,
  uids: number[],
  dest: MailboxState,
): Promise<Array<[number, number]>> {
  const sources = await source.snapshot(uids);
  const prepared: CopiedFile[] = [];
  try {
    for (const s of sources) {
      const base = uniqueBase(s.record.size);
      const tmp = join(dest.dir, 'tmp', base);
      try {
        await disk.linkOrCopy(s.path, tmp);
      } catch (err) {
        // renamed by a flag change since the snapshot: retry with the current name
        const now = source.currentPath(s.uid);
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || now === null) throw err;
        await disk.linkOrCopy(now, tmp);
      }
      const structure = s.structure ?? parseMessageStructure(await readFile(tmp));
      prepared.push({ src: s.uid, base, tmp, record: s.record, structure });
    }
  } catch (err) {
    for (const p of prepared) await unlink(p.tmp).catch(() => undefined);
    throw toStoreError(err);
  }
  return dest.adopt(prepared);
}
