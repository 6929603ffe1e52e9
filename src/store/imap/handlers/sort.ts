import type { Address, Envelope } from '../../mime/types.js';
import { MAX_CACHED_HEADER, RenderCache } from '../render/cache.js';
import { parseHeaderFields } from '../../mime/index.js';
import type { SortCriterion } from '../commands/types.js';
import type { Session } from '../session.js';
import { asciiCasemap, baseSubject, type BaseSubject } from './base-subject.js';
import { searchMessages, type SearchHit } from './search.js';
import { selectedOf } from './select.js';
import { orderedSubjectThreads, referencesThreads, formatThreads } from './thread.js';
import type { Cmd } from './types.js';

/** What SORT and THREAD compare, for one matched message. */
export interface SortFacts {
  seq: number;
  uid: number;
  arrival: number;
  size: number;
  /** RFC 5256 "sent date": the Date header in UTC, or INTERNALDATE when it has none that parses. */
  sent: number;
  subject: BaseSubject;
  from: string;
  to: string;
  cc: string;
  messageId: string | null;
  inReplyTo: string | null;
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

const FACTS_BATCH = 32;

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

/**
 * The facts of each hit. The envelope comes from the index only when a key needs it
 * (ARRIVAL and SIZE are in the record); References are read from the header, through
 * the render cache that SEARCH and FETCH share.
 */
async function loadFacts(
  s: Session,
  hits: SearchHit[],
  needs: { envelope: boolean; references: boolean },
): Promise<SortFacts[]> {
  const sel = selectedOf(s);
  const cache = s.config.cache;
  const user = s.user?.user ?? '';
  const out: SortFacts[] = [];
  for (let i = 0; i < hits.length; i += FACTS_BATCH) {
    const batch = hits.slice(i, i + FACTS_BATCH).map(async ({ seq, record }) => {
      const st = needs.envelope ? await sel.handle.structure(record.uid) : null;
      const env = st?.envelope ?? NO_ENVELOPE;
      const parsed = env.date === null ? NaN : Date.parse(env.date.replace(/\([^)]*\)/g, ''));
      let refs: string[] = [];
      if (needs.references && st !== null) {
        const key = RenderCache.key(user, sel.handle.name, sel.handle.uidValidity, record.uid);
        let header = cache.get(key)?.header;
        if (header === undefined) {
          header = await sel.handle.read(record.uid, {
            start: st.root.header.start,
            length: st.root.header.end - st.root.header.start,
          });
          if (header.length <= MAX_CACHED_HEADER) cache.set(key, 'header', header);
        }
        const fields = parseHeaderFields(header, { start: 0, end: header.length });
        const value = fields.find((f) => f.key === 'references')?.value ?? '';
        refs = value.match(MSG_ID) ?? [];
      }
      return {
        seq,
        uid: record.uid,
        arrival: record.internalDate.getTime(),
        size: record.size,
        sent: Number.isNaN(parsed) ? record.internalDate.getTime() : parsed,
        subject: baseSubject(env.subject),
        from: firstMailbox(env.from),
        to: firstMailbox(env.to),
        cc: firstMailbox(env.cc),
        messageId: firstId(env.messageId),
        inReplyTo: firstId(env.inReplyTo),
        references: refs,
      };
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

function compareKey(a: SortFacts, b: SortFacts, key: SortCriterion['key']): number {
  const cmp = (x: number | string, y: number | string): number => (x < y ? -1 : x > y ? 1 : 0);
  switch (key) {
    case 'ARRIVAL':
      return cmp(a.arrival, b.arrival);
    case 'CC':
      return cmp(a.cc, b.cc);
    case 'DATE':
      return cmp(a.sent, b.sent);
    case 'FROM':
      return cmp(a.from, b.from);
    case 'SIZE':
      return cmp(a.size, b.size);
    case 'SUBJECT':
      return cmp(asciiCasemap(a.subject.base), asciiCasemap(b.subject.base));
    case 'TO':
      return cmp(a.to, b.to);
  }
}

/** SORT / UID SORT (RFC 5256 §3): the criteria in order, then the sequence number (§2.2 tie-break). */
export async function handleSort(s: Session, cmd: Cmd<'SORT'>): Promise<void> {
  const envelope = cmd.criteria.some((c) => c.key !== 'ARRIVAL' && c.key !== 'SIZE');
  const facts = await loadFacts(s, await searchMessages(s, cmd.key), {
    envelope,
    references: false,
  });
  facts.sort((a, b) => {
    for (const c of cmd.criteria) {
      const r = compareKey(a, b, c.key);
      if (r !== 0) return c.reverse ? -r : r;
    }
    return a.seq - b.seq;
  });
  const ids = facts.map((f) => (cmd.uid ? f.uid : f.seq));
  s.out.line(ids.length === 0 ? '* SORT' : `* SORT ${ids.join(' ')}`);
}

/** THREAD / UID THREAD (RFC 5256 §3): ORDEREDSUBJECT or REFERENCES over the matched messages. */
export async function handleThread(s: Session, cmd: Cmd<'THREAD'>): Promise<void> {
  const refs = cmd.algorithm === 'REFERENCES';
  const facts = await loadFacts(s, await searchMessages(s, cmd.key), {
    envelope: true,
    references: refs,
  });
  const threads = refs ? referencesThreads(facts) : orderedSubjectThreads(facts);
  const text = formatThreads(threads, (f) => (cmd.uid ? f.uid : f.seq));
  s.out.line(text === '' ? '* THREAD' : `* THREAD ${text}`);
}
