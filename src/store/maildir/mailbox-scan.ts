import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageRecord } from '../backend.js';
import { parseStructureYielding } from './structure-parse.js';
import { headerOf, searchFieldsOf } from '../mime/search-fields.js';
import {
  fileNameOf,
  flagsToLetters,
  foreignLetters,
  lettersToFlags,
  splitFileName,
} from './flags.js';
import type { IndexRow, UserIndex } from './index-db.js';
import { readKeywords } from './keywords.js';
import { parseUidList } from './uidlist.js';

/**
 * Reading a mailbox directory into memory: dovecot-uidlist + the file names in new/ and
 * cur/ are reconciled (files without a UID get the next ones in name order, UIDs whose
 * file vanished are dropped), then sizes and dates come from the index, and only files
 * the index does not describe are read and parsed.
 */

export type Sub = 'new' | 'cur';

export interface Entry {
  uid: number;
  base: string;
  sub: Sub;
  /** Info letters we do not manage, kept across renames. */
  foreign: string;
  record: MessageRecord;
}

export function entryPath(
  dir: string,
  e: Pick<Entry, 'base' | 'sub' | 'foreign' | 'record'>,
  keywords: string[],
): string {
  if (e.sub === 'new') return join(dir, 'new', e.base);
  const letters = [...(flagsToLetters(e.record.flags, keywords) + e.foreign)].sort().join('');
  return join(dir, 'cur', fileNameOf(e.base, letters));
}

/** Flags in memory keep the order they were set in; from a file name they come sorted. */
function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(' ') === [...b].sort().join(' ');
}

export interface ScanResult {
  uidValidity: number;
  nextUid: number;
  guid: string;
  keywords: string[];
  entries: Map<number, Entry>;
  /** The uidlist on disk is missing, damaged or out of date: rewrite it. */
  rewrite: boolean;
}

const TMP_MAX_AGE_MS = 36 * 3600 * 1000;

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** `previous` (the entries already in memory) saves index look-ups for unchanged files. */
export async function scanMailbox(
  dir: string,
  ctx: { index: UserIndex; newUidValidity(): Promise<number> },
  previous: Map<number, Entry>,
  previousNextUid: number,
): Promise<ScanResult> {
  const { index } = ctx;
  const text = await readOptional(join(dir, 'dovecot-uidlist'));
  const list = text === null ? null : parseUidList(text);
  const guid =
    list !== null && list.guid.length === 32 ? list.guid : randomBytes(16).toString('hex');
  let rewrite = list === null || list.damaged || list.guid !== guid;
  const uidValidity = list?.uidValidity ?? (await ctx.newUidValidity());
  let nextUid = Math.max(list?.nextUid ?? 1, previousNextUid);
  const keywords = await readKeywords(dir);

  const onDisk = new Map<string, { sub: Sub; letters: string }>();
  for (const sub of ['cur', 'new'] as const) {
    // a missing new/ (some tools create only cur/) is an empty one
    const names = await readdir(join(dir, sub)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' && sub === 'new') return [] as string[];
      throw err;
    });
    for (const fileName of names) {
      if (fileName.startsWith('.')) continue;
      const { base, letters } = splitFileName(fileName);
      if (!onDisk.has(base)) onDisk.set(base, { sub, letters });
    }
  }
  const entries = new Map<number, Entry>();
  const make = (uid: number, base: string): Entry => {
    const file = onDisk.get(base) as { sub: Sub; letters: string };
    const old = previous.get(uid);
    const same = old?.base === base;
    const flags = lettersToFlags(file.letters, keywords);
    const record: MessageRecord = {
      uid,
      flags,
      internalDate: same ? old.record.internalDate : new Date(0),
      size: same ? old.record.size : -1,
      // 0: changed behind our back (or first load); the state gives it a fresh one
      modseq: same && sameFlags(old.record.flags, flags) ? old.record.modseq : 0,
    };
    return { uid, base, sub: file.sub, foreign: foreignLetters(file.letters), record };
  };
  const known = new Set<string>();
  for (const { uid, base } of list?.entries ?? []) {
    if (!onDisk.has(base) || known.has(base)) {
      rewrite = true;
      continue;
    }
    known.add(base);
    entries.set(uid, make(uid, base));
  }
  for (const base of [...onDisk.keys()].filter((b) => !known.has(b)).sort()) {
    entries.set(nextUid, make(nextUid, base));
    nextUid++;
    rewrite = true;
  }
  await fillFromIndex(dir, index, guid, entries, previous, keywords);
  await cleanTmp(dir);
  return { uidValidity, nextUid, guid, keywords, entries, rewrite };
}

async function fillFromIndex(
  dir: string,
  index: UserIndex,
  guid: string,
  entries: Map<number, Entry>,
  previous: Map<number, Entry>,
  keywords: string[],
): Promise<void> {
  const unknown = [...entries.values()].filter((e) => e.record.size < 0);
  const dropped = [...previous.keys()].filter(
    (uid) => previous.get(uid)?.base !== entries.get(uid)?.base,
  );
  if (dropped.length > 0) index.remove(guid, dropped);
  if (unknown.length === 0) return;
  const rows = new Map<number, IndexRow>(index.rows(guid).map((r) => [r.uid, r]));
  const stale = [...rows.values()]
    .filter((r) => entries.get(r.uid)?.base !== r.base)
    .map((r) => r.uid);
  if (stale.length > 0) index.remove(guid, stale);
  const parsed: Parameters<UserIndex['put']>[1] = [];
  for (const e of unknown) {
    const row = rows.get(e.uid);
    if (row !== undefined && row.base === e.base) {
      e.record.size = row.size;
      e.record.internalDate = new Date(row.internalDate);
      continue;
    }
    try {
      const path = entryPath(dir, e, keywords);
      const [bytes, info] = await Promise.all([readFile(path), stat(path)]);
      e.record.size = bytes.length;
      e.record.internalDate = info.mtime;
      const structure = await parseStructureYielding(bytes);
      parsed.push({
        uid: e.uid,
        base: e.base,
        size: bytes.length,
        internalDate: info.mtime.getTime(),
        structure,
        fields: searchFieldsOf(structure, headerOf(structure, bytes)),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      entries.delete(e.uid);
    }
  }
  if (parsed.length > 0) index.put(guid, parsed);
}

/**
 * Maildir: files left in tmp/ for more than 36 hours are debris from crashed deliveries.
 * Age is the inode's change time, not mtime: an APPEND in flight has already set its
 * file's mtime to the INTERNALDATE (any date in the past), and a COPY's hard link keeps
 * the source's mtime, while creating, linking and utimes all refresh ctime.
 */
async function cleanTmp(dir: string): Promise<void> {
  const tmp = join(dir, 'tmp');
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const info = await stat(join(tmp, name)).catch(() => null);
    if (info !== null && Date.now() - info.ctimeMs > TMP_MAX_AGE_MS)
      await unlink(join(tmp, name)).catch(() => undefined);
  }
}
