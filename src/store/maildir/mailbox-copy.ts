import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageRecord } from '../backend.js';
import { parseStructureYielding } from './structure-parse.js';
import type { MessageStructure } from '../mime/types.js';
import { headerOf, searchFieldsOf, type SearchFields } from '../mime/search-fields.js';
import { toStoreError } from './disk.js';
import type { MailboxState } from './mailbox-state.js';

/**
 * COPY/MOVE between mailboxes (or within one, RFC 6851 allows MOVE to the selected
 * mailbox): each source file is hard-linked (as Dovecot does; a plain durable copy
 * where links are impossible) into the destination's tmp/ under the source's lock,
 * then the destination adopts all of them under its own lock, in order. The two locks
 * are never held together, so COPY A→B and B→A cannot deadlock.
 */

export interface LinkedFile {
  src: number;
  base: string;
  tmp: string;
  record: MessageRecord;
  structure: MessageStructure | null;
  /** The source's search fields (index row), null when it has none. */
  fields: SearchFields | null;
}

export interface CopiedFile extends LinkedFile {
  structure: MessageStructure;
}

export async function copyMessages(
  source: MailboxState,
  uids: number[],
  dest: MailboxState,
): Promise<Array<[number, number]>> {
  const linked = await source.linkOut(uids, join(dest.dir, 'tmp'));
  const prepared: CopiedFile[] = [];
  try {
    for (const l of linked) {
      if (l.structure !== null) {
        prepared.push({ ...l, structure: l.structure });
        continue;
      }
      // not indexed in the source: parse the copy, and take its search fields meanwhile
      const bytes = await readFile(l.tmp);
      const structure = await parseStructureYielding(bytes);
      const fields = searchFieldsOf(structure, headerOf(structure, bytes));
      prepared.push({ ...l, structure, fields });
    }
  } catch (err) {
    for (const l of linked) await unlink(l.tmp).catch(() => undefined);
    throw toStoreError(err);
  }
  return dest.adopt(prepared);
}
