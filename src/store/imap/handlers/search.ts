import type { MessageRecord } from '../../backend.js';
import { parseHeaderFields } from '../../mime/index.js';
import type { BodyPart, MessageStructure } from '../../mime/types.js';
import { matchSet } from '../commands/sequence.js';
import type { SearchKey } from '../commands/types.js';
import type { Selected, Session } from '../session.js';
import { decodeQuotedPrintable, decodeWords } from '../../mime/decode.js';
import {
  addressText,
  dayOf,
  sentDayOf,
  subjectText,
  type AddressField,
} from '../../mime/search-fields.js';
import {
  compileQuick,
  fieldsNeeded,
  headerPrefilter,
  isEnvelopeField,
  type QuickMessage,
} from './search-quick.js';
import { writeEsearch } from './esearch.js';
import { selectedOf } from './select.js';
import { MAX_CACHED_HEADER, RenderCache, type CacheEntry } from '../render/cache.js';
import type { Cmd } from './types.js';

/** Per-message facts, loaded only when a key needs them. */
class Candidate {
  private structure: Promise<MessageStructure> | null = null;
  private headers: Promise<Array<{ key: string; value: string }>> | null = null;
  private headerBytes: Promise<Uint8Array> | null = null;
  private headerText: string | null = null;
  private text: Promise<string> | null = null;

  constructor(
    readonly cache: { entry: CacheEntry; remember: (header: Uint8Array) => void },
    readonly sel: Selected,
    readonly seq: number,
    readonly record: MessageRecord,
    readonly count: number,
    readonly maxUid: number,
  ) {}

  /** Sets the structure when a batched index read already has it. */
  preload(structure: MessageStructure | undefined): this {
    if (structure !== undefined) this.structure = Promise.resolve(structure);
    return this;
  }

  getStructure(): Promise<MessageStructure> {
    this.structure ??= this.sel.handle.structure(this.record.uid);
    return this.structure;
  }

  /** The raw header block (from the shared render cache when it holds it). */
  getHeaderBytes(): Promise<Uint8Array> {
    this.headerBytes ??= (async () => {
      let bytes = this.cache.entry.header;
      if (bytes === undefined) {
        const st = await this.getStructure();
        bytes = await this.sel.handle.read(this.record.uid, {
          start: st.root.header.start,
          length: st.root.header.end - st.root.header.start,
        });
        if (bytes.length <= MAX_CACHED_HEADER) this.cache.remember(bytes);
      }
      return bytes;
    })();
    return this.headerBytes;
  }

  /** The header block as latin1, lower-cased: a cheap first test before parsing. */
  async getHeaderText(): Promise<string> {
    this.headerText ??= Buffer.from(await this.getHeaderBytes())
      .toString('latin1')
      .toLowerCase();
    return this.headerText;
  }

  getHeaders(): Promise<Array<{ key: string; value: string }>> {
    this.headers ??= (async () => {
      const bytes = await this.getHeaderBytes();
      return parseHeaderFields(bytes, { start: 0, end: bytes.length }).map((f) => ({
        key: f.key,
        value: f.value,
      }));
    })();
    return this.headers;
  }

  /** The body text with transfer encodings undone, for BODY / TEXT (charsets read as UTF-8). */
  getBodyText(): Promise<string> {
    this.text ??= (async () => {
      const st = await this.getStructure();
      const bytes = Buffer.from(await this.sel.handle.read(this.record.uid));
      return leafTexts(st.root, bytes).join('\n');
    })();
    return this.text;
  }
}

function leafTexts(part: BodyPart, bytes: Buffer): string[] {
  if (part.parts.length > 0) return part.parts.flatMap((p) => leafTexts(p, bytes));
  if (part.message !== null) {
    const inner = part.message.root;
    return [
      bytes.toString('utf8', inner.header.start, inner.header.end),
      ...leafTexts(inner, bytes),
    ];
  }
  const raw = bytes.subarray(part.body.start, part.body.end);
  const enc = (part.encoding ?? '').toLowerCase();
  if (enc === 'base64') return [Buffer.from(raw.toString('latin1'), 'base64').toString('utf8')];
  if (enc === 'quoted-printable')
    return [decodeQuotedPrintable(raw.toString('latin1')).toString('utf8')];
  return [raw.toString('utf8')];
}

const includes = (hay: string, needle: string): boolean =>
  hay.toLowerCase().includes(needle.toLowerCase());

async function sentDay(c: Candidate): Promise<number | null> {
  const date = (await c.getStructure()).envelope.date;
  return date === null ? null : sentDayOf(date);
}

function has(c: Candidate, flag: string): boolean {
  return c.record.flags.some((f) => f.toLowerCase() === flag.toLowerCase());
}

/**
 * FROM / TO / CC / BCC / SUBJECT from the indexed envelope, so the common searches read
 * no message file; other header names fall back to reading the header.
 */
async function envelopeText(field: string, c: Candidate): Promise<string | null> {
  if (!isEnvelopeField(field)) return null;
  const st = await c.getStructure();
  if (field === 'subject') return subjectText(st);
  return addressText(st.envelope[field as AddressField]);
}

/** headerPrefilter on the message's header block (see search-quick.ts). */
async function mayHaveHeader(c: Candidate, field: string, value: string): Promise<boolean> {
  return headerPrefilter(field, value)(await c.getHeaderText());
}

async function matches(key: SearchKey, c: Candidate): Promise<boolean> {
  switch (key.type) {
    case 'all':
      return true;
    case 'answered':
      return has(c, '\\Answered');
    case 'deleted':
      return has(c, '\\Deleted');
    case 'draft':
      return has(c, '\\Draft');
    case 'flagged':
      return has(c, '\\Flagged');
    case 'seen':
      return has(c, '\\Seen');
    case 'unanswered':
      return !has(c, '\\Answered');
    case 'undeleted':
      return !has(c, '\\Deleted');
    case 'undraft':
      return !has(c, '\\Draft');
    case 'unflagged':
      return !has(c, '\\Flagged');
    case 'unseen':
      return !has(c, '\\Seen');
    case 'recent':
      return c.sel.handle.isRecent(c.record.uid);
    case 'old':
      return !c.sel.handle.isRecent(c.record.uid);
    case 'new':
      return c.sel.handle.isRecent(c.record.uid) && !has(c, '\\Seen');
    case 'keyword':
      return has(c, key.flag);
    case 'unkeyword':
      return !has(c, key.flag);
    case 'before':
      return dayOf(c.record.internalDate) < key.date.getTime();
    case 'on':
      return dayOf(c.record.internalDate) === key.date.getTime();
    case 'since':
      return dayOf(c.record.internalDate) >= key.date.getTime();
    case 'sentbefore':
    case 'senton':
    case 'sentsince': {
      const day = await sentDay(c);
      if (day === null) return false;
      const t = key.date.getTime();
      return key.type === 'sentbefore' ? day < t : key.type === 'senton' ? day === t : day >= t;
    }
    case 'modseq':
      return c.record.modseq >= key.modseq;
    case 'larger':
      return c.record.size > key.size;
    case 'smaller':
      return c.record.size < key.size;
    case 'seqset':
      return matchSet(key.set, c.count, c.seq);
    case 'uid':
      return matchSet(key.set, c.maxUid, c.record.uid);
    case 'header': {
      // an empty string matches every message that has the field, and only those (§6.4.4)
      if (key.value === '') return (await c.getHeaders()).some((f) => f.key === key.field);
      const fromEnvelope = await envelopeText(key.field, c);
      if (fromEnvelope !== null) return includes(fromEnvelope, key.value);
      if (!(await mayHaveHeader(c, key.field, key.value))) return false;
      const fields = await c.getHeaders();
      return fields.some((f) => f.key === key.field && includes(decodeWords(f.value), key.value));
    }
    case 'body':
      return includes(await c.getBodyText(), key.value);
    case 'text': {
      const fields = await c.getHeaders();
      return (
        fields.some((f) => includes(decodeWords(f.value), key.value)) ||
        includes(await c.getBodyText(), key.value)
      );
    }
    case 'not':
      return !(await matches(key.key, c));
    case 'or':
      return (await matches(key.a, c)) || (await matches(key.b, c));
    case 'and':
      for (const k of key.keys) if (!(await matches(k, c))) return false;
      return true;
  }
}

const SEARCH_BATCH = 32;
/** Messages whose structures one index query fetches, when a key needs them. */
const STRUCTURE_BATCH = 512;
/** Messages whose search fields one index query fetches. */
const FIELDS_BATCH = 512;

/** Whether matching `key` may need a message's structure (envelope, header or body offsets). */
function needsStructure(key: SearchKey): boolean {
  switch (key.type) {
    case 'header':
      // other fields are read from the header block, which the render cache often holds
      return isEnvelopeField(key.field) && key.value !== '';
    case 'body':
    case 'text':
    case 'sentbefore':
    case 'senton':
    case 'sentsince':
      return true;
    case 'not':
      return needsStructure(key.key);
    case 'or':
      return needsStructure(key.a) || needsStructure(key.b);
    case 'and':
      return key.keys.some(needsStructure);
    default:
      return false;
  }
}

/** A message of the selected mailbox that a search matched. */
export interface SearchHit {
  seq: number;
  record: MessageRecord;
}

/** The messages of the selected mailbox that match `searchKey`, in sequence order (SEARCH, SORT, THREAD). */
export async function searchMessages(s: Session, searchKey: SearchKey): Promise<SearchHit[]> {
  const sel = selectedOf(s);
  const records = new Map(sel.handle.records().map((r) => [r.uid, r]));
  const hits: SearchHit[] = [];
  const uids = sel.tracker.all;
  if (searchKey.type === 'all') {
    // SORT and THREAD of a whole mailbox: nothing to look at per message
    uids.forEach((uid, i) => {
      const record = records.get(uid);
      if (record !== undefined) hits.push({ seq: i + 1, record });
    });
    return hits;
  }
  const need = [...fieldsNeeded(searchKey)];
  const quick = compileQuick(searchKey);
  const m: QuickMessage = {
    record: undefined as unknown as MessageRecord,
    seq: 0,
    fields: undefined,
    isRecent: (uid) => sel.handle.isRecent(uid),
    count: uids.length,
    maxUid: sel.tracker.maxUid,
  };
  // Most keys are decided from the record and the indexed search fields, in one index
  // query per FIELDS_BATCH and no await per message; the rest are checked one by one.
  for (let start = 0; start < uids.length; start += FIELDS_BATCH) {
    const slice = uids.slice(start, start + FIELDS_BATCH);
    const fields =
      need.length > 0 && sel.handle.searchFields !== undefined
        ? await sel.handle.searchFields(slice, need)
        : undefined;
    const verdicts: Array<SearchHit | null | undefined> = [];
    const open: Array<{ at: number; seq: number; record: MessageRecord }> = [];
    slice.forEach((uid, j) => {
      const record = records.get(uid);
      if (record === undefined) return verdicts.push(null);
      m.record = record;
      m.seq = start + j + 1;
      m.fields = fields?.get(uid);
      const v = quick(m);
      if (v === undefined) open.push({ at: j, seq: m.seq, record });
      return verdicts.push(v ? { seq: m.seq, record } : null);
    });
    for (const found of await slowMatches(s, searchKey, open, uids.length))
      verdicts[found.at] = found.hit;
    for (const v of verdicts) if (v) hits.push(v);
  }
  return hits;
}

/**
 * The messages the index could not decide, checked by reading what the key needs
 * (structure, header, body) in batches so that the file reads overlap; the structures
 * come from the index in one query per STRUCTURE_BATCH.
 */
async function slowMatches(
  s: Session,
  searchKey: SearchKey,
  open: Array<{ at: number; seq: number; record: MessageRecord }>,
  count: number,
): Promise<Array<{ at: number; hit: SearchHit | null }>> {
  const sel = selectedOf(s);
  const cache = s.config.cache;
  const user = s.user?.user ?? '';
  const structured = needsStructure(searchKey);
  let structures = new Map<number, MessageStructure>();
  const out: Array<{ at: number; hit: SearchHit | null }> = [];
  for (let start = 0; start < open.length; start += SEARCH_BATCH) {
    if (structured && start % STRUCTURE_BATCH === 0)
      structures = await sel.handle.structures(
        open.slice(start, start + STRUCTURE_BATCH).map((o) => o.record.uid),
      );
    const batch = open.slice(start, start + SEARCH_BATCH).map(async ({ at, seq, record }) => {
      const uid = record.uid;
      const key = RenderCache.key(user, sel.handle.name, sel.handle.uidValidity, uid);
      const cached = {
        entry: cache.get(key) ?? {},
        remember: (h: Uint8Array) => cache.set(key, 'header', h),
      };
      const c = new Candidate(cached, sel, seq, record, count, sel.tracker.maxUid).preload(
        structures.get(uid),
      );
      const hit = (await matches(searchKey, c).catch(() => false)) ? { seq, record } : null;
      return { at, hit };
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** SEARCH / UID SEARCH (§6.4.4); with RETURN, ESEARCH (RFC 4731). */
export async function handleSearch(s: Session, cmd: Cmd<'SEARCH'>): Promise<void> {
  const found = await searchMessages(s, cmd.key);
  const hits = found.map((h) => (cmd.uid ? h.record.uid : h.seq));
  // with a MODSEQ key the reply carries the highest mod-sequence found (RFC 7162 §3.1.5)
  let modseq = 0;
  if (hasModseqKey(cmd.key)) {
    s.enableCondstore();
    for (const h of found) modseq = Math.max(modseq, h.record.modseq);
  }
  if (cmd.returns !== undefined) return writeEsearch(s, cmd, cmd.returns, hits, modseq);
  const tail = modseq > 0 ? ` (MODSEQ ${modseq})` : '';
  s.out.line(hits.length === 0 ? '* SEARCH' : `* SEARCH ${hits.join(' ')}${tail}`);
}

export function hasModseqKey(key: SearchKey): boolean {
  switch (key.type) {
    case 'modseq':
      return true;
    case 'not':
      return hasModseqKey(key.key);
    case 'or':
      return hasModseqKey(key.a) || hasModseqKey(key.b);
    case 'and':
      return key.keys.some(hasModseqKey);
    default:
      return false;
  }
}
