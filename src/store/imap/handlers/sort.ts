import type { Session } from '../session.js';
import type { SortCriterion } from '../commands/types.js';
import { hasModseqKey, searchMessages } from './search.js';
import { loadFacts, type SortFacts } from './sort-facts.js';
import { referencesThreads, orderedSubjectThreads, formatThreads } from './thread.js';
import type { Cmd } from './types.js';

export type { SortFacts } from './sort-facts.js';

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
      return cmp(a.subjectKey, b.subjectKey);
    case 'TO':
      return cmp(a.to, b.to);
  }
}

/** SORT / UID SORT (RFC 5256 §3): the criteria in order, then the sequence number (§2.2 tie-break). */
export async function handleSort(s: Session, cmd: Cmd<'SORT'>): Promise<void> {
  const envelope = cmd.criteria.some((c) => c.key !== 'ARRIVAL' && c.key !== 'SIZE');
  const hits = await searchMessages(s, cmd.key);
  const facts = await loadFacts(s, hits, {
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
  // with a MODSEQ key a non-empty reply ends with the highest mod-sequence of the
  // messages it lists, as SEARCH's does (RFC 7162 §3.1.5, sort-data in §7)
  let modseq = 0;
  if (hasModseqKey(cmd.key)) {
    s.enableCondstore();
    for (const h of hits) modseq = Math.max(modseq, h.record.modseq);
  }
  const tail = modseq > 0 ? ` (MODSEQ ${modseq})` : '';
  s.out.line(ids.length === 0 ? '* SORT' : `* SORT ${ids.join(' ')}${tail}`);
}

/** THREAD / UID THREAD (RFC 5256 §3): ORDEREDSUBJECT or REFERENCES over the matched messages. */
export async function handleThread(s: Session, cmd: Cmd<'THREAD'>): Promise<void> {
  // a MODSEQ key enables CONDSTORE (RFC 7162 §3.1), but THREAD's reply has no MODSEQ part
  if (hasModseqKey(cmd.key)) s.enableCondstore();
  const refs = cmd.algorithm === 'REFERENCES';
  const facts = await loadFacts(s, await searchMessages(s, cmd.key), {
    envelope: true,
    references: refs,
  });
  const threads = refs ? referencesThreads(facts) : orderedSubjectThreads(facts);
  const text = formatThreads(threads, (f) => (cmd.uid ? f.uid : f.seq));
  s.out.line(text === '' ? '* THREAD' : `* THREAD ${text}`);
}
