import { formatSet } from '../commands/sequence.js';
import type { SearchReturn } from '../commands/types.js';
import { str } from '../serializer.js';
import type { Session } from '../session.js';

/**
 * esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)  (RFC 4731 §3)
 * `hits` ascend (sequence numbers or UIDs). With no match MIN, MAX and ALL are left out
 * and COUNT is 0 (§3.1).
 */
export function writeEsearch(
  s: Session,
  cmd: { tag: string; uid: boolean },
  returns: readonly SearchReturn[],
  hits: readonly number[],
  /** The highest mod-sequence among the hits when the key had MODSEQ (RFC 7162 §3.1.5), else 0. */
  modseq = 0,
): void {
  const data: string[] = [];
  const want = new Set(returns);
  if (hits.length > 0) {
    if (want.has('MIN')) data.push(`MIN ${hits[0]}`);
    if (want.has('MAX')) data.push(`MAX ${hits[hits.length - 1]}`);
    if (want.has('ALL')) data.push(`ALL ${formatSet([...hits])}`);
  }
  if (want.has('COUNT')) data.push(`COUNT ${hits.length}`);
  if (modseq > 0 && hits.length > 0) data.push(`MODSEQ ${modseq}`);
  const parts = [`* ESEARCH (TAG ${str(cmd.tag)})`];
  if (cmd.uid) parts.push('UID');
  s.out.line([...parts, ...data].join(' '));
}
