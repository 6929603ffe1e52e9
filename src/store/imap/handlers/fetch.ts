import { StoreError, type MessageRecord } from '../../backend.js';
import type { MessageStructure } from '../../mime/types.js';
import { formatDateTime } from '../commands/dates.js';
import type { FetchItem } from '../commands/types.js';
import { RenderCache, type CacheEntry, type RenderedItem } from '../render/cache.js';
import { readSection, sectionName } from '../render/section.js';
import { renderBody, renderEnvelope } from '../render/structure.js';
import { flagList } from '../serializer.js';
import type { Selected, Session } from '../session.js';
import { resolveSet } from './resolve.js';
import { ImapError } from '../errors.js';
import { selectedOf, vanishedIn } from './select.js';
import type { Cmd, OkReply } from './types.js';

/** Items that read the body and therefore set \Seen (RFC 3501 §6.4.5). */
function setsSeen(item: FetchItem): boolean {
  return (
    (item.type === 'BODY[]' && !item.peek) || item.type === 'RFC822' || item.type === 'RFC822.TEXT'
  );
}

/** About how many message bytes the items read from a message of `size` (its read-ahead weight). */
function bytesRead(items: FetchItem[], size: number): number {
  let total = 0;
  for (const item of items) {
    if (item.type === 'BODY[]') total += Math.min(size, item.partial?.length ?? size);
    else if (item.type === 'RFC822' || item.type === 'RFC822.HEADER' || item.type === 'RFC822.TEXT')
      total += size;
  }
  return total;
}

function needsStructure(item: FetchItem): boolean {
  if (item.type === 'BODY[]') return item.section.path.length > 0 || item.section.specifier !== '';
  return (
    item.type === 'ENVELOPE' ||
    item.type === 'BODYSTRUCTURE' ||
    item.type === 'BODY' ||
    item.type === 'RFC822.HEADER' ||
    item.type === 'RFC822.TEXT'
  );
}

/** Messages prepared ahead of the one being written: overlaps disk reads with socket writes, bounds memory. */
const READ_AHEAD = 16;
/**
 * …and at most this many message bytes among them (one message always): 16 messages of
 * the 64 MiB a message may have would otherwise be a gigabyte held for one FETCH.
 */
const READ_AHEAD_BYTES = 8 * 1024 * 1024;

/**
 * FETCH / UID FETCH (§6.4.5, §6.4.8). Bodies are written as Buffers, one message at a time.
 * A message another session expunged (not yet reported: §7.4.1 forbids the EXPUNGE now),
 * or whose file vanished under the read, is left out and the reply says so, as
 * Dovecot's does: `OK [EXPUNGEISSUED]` (RFC 5530; RFC 2180 §4.1.2 allows omitting it).
 */
export async function handleFetch(s: Session, cmd: Cmd<'FETCH'>): Promise<OkReply | void> {
  const sel = selectedOf(s);
  const items = [...cmd.items];
  if (cmd.uid && !items.some((i) => i.type === 'UID')) items.unshift({ type: 'UID' });
  if (cmd.vanished === true && (!cmd.uid || !s.qresync))
    throw new ImapError('BAD', 'VANISHED needs UID FETCH and QRESYNC enabled');
  // MODSEQ and CHANGEDSINCE enable CONDSTORE, and CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4)
  if (cmd.changedSince !== undefined || items.some((i) => i.type === 'MODSEQ')) {
    s.enableCondstore();
    if (!items.some((i) => i.type === 'MODSEQ')) items.push({ type: 'MODSEQ' });
  }
  let targets = resolveSet(sel, cmd.set, cmd.uid);
  const records = new Map<number, MessageRecord>(sel.handle.records().map((r) => [r.uid, r]));
  if (cmd.changedSince !== undefined) {
    const since = cmd.changedSince;
    if (cmd.vanished === true) {
      const gone = vanishedIn(sel, since, cmd.set);
      if (gone !== '') s.out.line(`* VANISHED (EARLIER) ${gone}`);
    }
    targets = targets.filter(([, uid]) => (records.get(uid)?.modseq ?? Infinity) > since);
  }

  if (!sel.readOnly && items.some(setsSeen)) {
    const unseen = targets
      .map(([, uid]) => uid)
      .filter((uid) => records.get(uid)?.flags.includes('\\Seen') === false);
    if (unseen.length > 0) {
      for (const r of await sel.handle.setFlags(unseen, 'add', ['\\Seen'])) records.set(r.uid, r);
      if (!items.some((i) => i.type === 'FLAGS')) items.push({ type: 'FLAGS' });
      // a FETCH that set \Seen reports the new mod-sequence too (RFC 7162 §3.1)
      if (s.condstore) {
        if (!items.some((i) => i.type === 'UID')) items.unshift({ type: 'UID' });
        if (!items.some((i) => i.type === 'MODSEQ')) items.push({ type: 'MODSEQ' });
      }
    }
  }
  const cache = s.config.cache;
  const user = s.user?.user ?? '';
  let skipped = false;
  const rendering = items.some(isRendered);
  const prepare = async (seq: number, uid: number): Promise<Array<string | Uint8Array> | null> => {
    const record = records.get(uid);
    if (record === undefined) {
      skipped = true;
      return null;
    }
    // FETCH BODY[] of a whole mailbox renders nothing: no key to build, no LRU to touch
    const key = rendering
      ? RenderCache.key(user, sel.handle.name, sel.handle.uidValidity, uid)
      : '';
    const cached = (rendering ? cache.get(key) : undefined) ?? {};
    const wantStructure = items.some(
      (i) => needsStructure(i) && !(isRendered(i) && cached[i.type] !== undefined),
    );
    try {
      const structure = wantStructure ? await sel.handle.structure(uid) : null;
      return await renderOne(sel, seq, record, structure, items, cached, (item, value) =>
        cache.set(key, item, value),
      );
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'no-such-message')) throw err;
      skipped = true;
      return null;
    }
  };
  const pending: Array<{ parts: Promise<Array<string | Uint8Array> | null>; bytes: number }> = [];
  let pendingBytes = 0;
  let next = 0;
  const fill = (): void => {
    while (pending.length < READ_AHEAD && next < targets.length) {
      const [seq, uid] = targets[next] as [number, number];
      const bytes = bytesRead(items, records.get(uid)?.size ?? 0);
      if (pending.length > 0 && pendingBytes + bytes > READ_AHEAD_BYTES) break;
      next++;
      const parts = prepare(seq, uid);
      parts.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
      pending.push({ parts, bytes });
      pendingBytes += bytes;
    }
  };
  fill();
  while (pending.length > 0) {
    const head = pending.shift()!;
    const parts = await head.parts;
    pendingBytes -= head.bytes;
    fill();
    if (parts === null) continue;
    for (const part of parts) {
      if (typeof part === 'string') s.out.text(part);
      else await s.out.bytes(part);
    }
    await s.out.maybeFlush();
  }
  if (skipped) return { code: 'EXPUNGEISSUED', text: 'Some messages were already expunged' };
}

/**
 * One message's FETCH response. Everything is read before the first byte is written, so
 * a storage error cannot leave half a response on the wire; bodies stay Buffers.
 */
function isRendered(item: FetchItem): item is { type: RenderedItem } {
  return item.type === 'ENVELOPE' || item.type === 'BODYSTRUCTURE' || item.type === 'BODY';
}

async function renderOne(
  sel: Selected,
  seq: number,
  record: MessageRecord,
  structure: MessageStructure | null,
  items: FetchItem[],
  cached: CacheEntry,
  remember: (item: RenderedItem, value: string) => void,
): Promise<Array<string | Uint8Array>> {
  const rendered = (item: RenderedItem, make: (st: MessageStructure) => string): string => {
    const hit = cached[item];
    if (hit !== undefined) return hit;
    const value = make(structure as MessageStructure);
    remember(item, value);
    return value;
  };
  const parts: Array<string | Uint8Array> = [];
  let text = `* ${seq} FETCH (`;
  const sep = (): string => (text.endsWith('(') && parts.length === 0 ? '' : ' ');
  const literal = async (label: string, bytes: Promise<Uint8Array>): Promise<void> => {
    const data = await bytes;
    text += `${sep()}${label} {${data.length}}\r\n`;
    parts.push(text, data);
    text = '';
  };
  const st = structure;
  for (const item of items) {
    switch (item.type) {
      case 'UID':
        text += `${sep()}UID ${record.uid}`;
        break;
      case 'FLAGS':
        text += `${sep()}FLAGS ${flagList(record.flags, sel.handle.isRecent(record.uid))}`;
        break;
      case 'INTERNALDATE':
        text += `${sep()}INTERNALDATE "${formatDateTime(record.internalDate)}"`;
        break;
      case 'RFC822.SIZE':
        text += `${sep()}RFC822.SIZE ${record.size}`;
        break;
      case 'MODSEQ':
        text += `${sep()}MODSEQ (${record.modseq})`;
        break;
      case 'ENVELOPE':
        text += `${sep()}ENVELOPE ${rendered('ENVELOPE', (x) => renderEnvelope(x.envelope))}`;
        break;
      case 'BODYSTRUCTURE':
      case 'BODY':
        text += `${sep()}${item.type} ${rendered(item.type, (x) => renderBody(x.root, item.type === 'BODYSTRUCTURE'))}`;
        break;
      case 'RFC822':
      case 'RFC822.HEADER':
      case 'RFC822.TEXT': {
        const specifier =
          item.type === 'RFC822' ? '' : item.type === 'RFC822.HEADER' ? 'HEADER' : 'TEXT';
        await literal(
          item.type,
          readSection(
            sel.handle,
            record.uid,
            record.size,
            st,
            { path: [], specifier, fields: [] },
            null,
          ),
        );
        break;
      }
      case 'BODY[]': {
        const origin = item.partial === null ? '' : `<${item.partial.start}>`;
        await literal(
          `BODY[${sectionName(item.section)}]${origin}`,
          readSection(sel.handle, record.uid, record.size, st, item.section, item.partial),
        );
        break;
      }
    }
  }
  parts.push(`${text})\r\n`);
  return parts;
}
