import { StoreError, type MessageRecord } from '../../backend.js';
import { parseHeaderFields } from '../../mime/index.js';
import type { Address, Envelope, MessageStructure } from '../../mime/types.js';
import { MAX_CACHED_HEADER, RenderCache, type SortKeys } from '../render/cache.js';
import type { Session } from '../session.js';
import { asciiCasemap, baseSubject } from './base-subject.js';
import type { SearchHit } from './search.js';
import { selectedOf } from './select.js';

/** What SORT and THREAD compare, for one matched message. */
export interface SortFacts extends SortKeys {
  seq: number;
  uid: number;
  arrival: number;
  size: number;
  /** References ids (THREAD REFERENCES only; empty otherwise). */
  references: string[];
}

const MSG_ID = /<[^<>\s]+>/g;

function firstId(value: string | null): string | null {
  if (value === null) return null;
  return value.match(MSG_ID)?.[0] ?? null;
}

/** addr-mailbox of the first address (RFC 5256 §3, CC / FROM / TO), for i;ascii-casemap. */
function firstMailbox(addrs: Address[]): string {
  return asciiCasemap(addrs.find((a) => a.mailbox !== null && a.host !== null)?.mailbox ?? '');
}

const NO_ENVELOPE: Envelope = {
  date: null,
  subject: null,
  from: [],
  sender: [],
  replyTo: [],
  to: [],
  cc: [],
  bcc: [],
  inReplyTo: null,
  messageId: null,
};

/** The envelope-derived keys; `sent` falls back to INTERNALDATE when the Date header does not parse. */
function sortKeys(env: Envelope, record: MessageRecord): SortKeys {
  const parsed = env.date === null ? NaN : Date.parse(env.date.replace(/\([^)]*\)/g, ''));
  const subject = baseSubject(env.subject);
  return {
    sent: Number.isNaN(parsed) ? record.internalDate.getTime() : parsed,
    subject,
    subjectKey: asciiCasemap(subject.base),
    from: firstMailbox(env.from),
    to: firstMailbox(env.to),
    cc: firstMailbox(env.cc),
    messageId: firstId(env.messageId),
    inReplyTo: firstId(env.inReplyTo),
  };
}

/** Messages whose structures are fetched from the index in one query (bounds the memory of one step). */
const STRUCTURE_BATCH = 512;
/** Header reads in flight at once (THREAD REFERENCES on messages whose header is not cached). */
const READ_BATCH = 32;

/**
 * The facts of each hit, in hit order. A message's sort keys and References never
 * change, so they are kept in the render cache that SEARCH and FETCH share: a repeated
 * SORT or THREAD reads neither the index nor a file. Misses take their structures from
 * the index in batches (one query each, not one per message); References are read from
 * the header (itself cached when small). ARRIVAL and SIZE come from the record.
 */
export async function loadFacts(
  s: Session,
  hits: SearchHit[],
  needs: { envelope: boolean; references: boolean },
): Promise<SortFacts[]> {
  const sel = selectedOf(s);
  const cache = s.config.cache;
  const user = s.user?.user ?? '';
  const keyOf = (uid: number): string =>
    RenderCache.key(user, sel.handle.name, sel.handle.uidValidity, uid);
  const facts: SortFacts[] = [];
  const pending: Array<{ f: SortFacts; record: MessageRecord; keys: boolean; refs: boolean }> = [];
  for (const { seq, record } of hits) {
    const entry = needs.envelope ? cache.get(keyOf(record.uid)) : undefined;
    const k = entry?.sortKeys ?? sortKeys(NO_ENVELOPE, record);
    // fields written out rather than spread: one object shape, built without a copy loop
    const f: SortFacts = {
      sent: k.sent,
      subject: k.subject,
      subjectKey: k.subjectKey,
      from: k.from,
      to: k.to,
      cc: k.cc,
      messageId: k.messageId,
      inReplyTo: k.inReplyTo,
      seq,
      uid: record.uid,
      arrival: record.internalDate.getTime(),
      size: record.size,
      references: (needs.references ? entry?.references : undefined) ?? [],
    };
    facts.push(f);
    const keys = needs.envelope && entry?.sortKeys === undefined;
    const refs = needs.references && entry?.references === undefined;
    if (keys || refs) pending.push({ f, record, keys, refs });
  }
  for (let i = 0; i < pending.length; i += STRUCTURE_BATCH) {
    const batch = pending.slice(i, i + STRUCTURE_BATCH);
    const structures = await sel.handle.structures(batch.map((p) => p.f.uid));
    for (let j = 0; j < batch.length; j += READ_BATCH) {
      await Promise.all(
        batch.slice(j, j + READ_BATCH).map(async ({ f, record, keys, refs }) => {
          // a message expunged meanwhile has no structure: it sorts on its record alone
          const st = structures.get(f.uid);
          if (st === undefined) return;
          if (keys) {
            const k = sortKeys(st.envelope, record);
            Object.assign(f, k);
            cache.set(keyOf(f.uid), 'sortKeys', k);
          }
          const references = refs ? await readReferences(s, f.uid, st, keyOf(f.uid)) : null;
          if (references !== null) {
            f.references = references;
            cache.set(keyOf(f.uid), 'references', references);
          }
        }),
      );
    }
  }
  return facts;
}

/** The ids of the top-level References field, read from the (cached) header block; null when the message is gone. */
async function readReferences(
  s: Session,
  uid: number,
  st: MessageStructure,
  key: string,
): Promise<string[] | null> {
  const sel = selectedOf(s);
  const cache = s.config.cache;
  let header = cache.get(key)?.header;
  if (header === undefined) {
    try {
      header = await sel.handle.read(uid, {
        start: st.root.header.start,
        length: st.root.header.end - st.root.header.start,
      });
    } catch (err) {
      // expunged meanwhile: it threads as a message without references
      if (err instanceof StoreError && err.code === 'no-such-message') return null;
      throw err;
    }
    if (header.length <= MAX_CACHED_HEADER) cache.set(key, 'header', header);
  }
  const fields = parseHeaderFields(header, { start: 0, end: header.length });
  const value = fields.find((f) => f.key === 'references')?.value ?? '';
  return value.match(MSG_ID) ?? [];
}
