import { checkCharset, searchKeys } from './search.js';
import type { CommandBody, SearchKey, SortCriterion } from './types.js';
import type { Tokens } from './tokens.js';

const SORT_KEYS: ReadonlySet<string> = new Set([
  'ARRIVAL',
  'CC',
  'DATE',
  'FROM',
  'SIZE',
  'SUBJECT',
  'TO',
]);

/** search-criteria = charset 1*(SP search-key) ; charset = atom / quoted   (RFC 5256 §5) */
function searchCriteria(t: Tokens): { charset: string; key: SearchKey } {
  const charset = t.astringText().toUpperCase();
  t.sp();
  const key = searchKeys(t);
  t.end();
  checkCharset(charset);
  return { charset, key };
}

/**
 * sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria          (RFC 5256 §5)
 * sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
 * sort-criterion = ["REVERSE" SP] sort-key
 * sort-key = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" / "SUBJECT" / "TO"
 */
export function parseSort(t: Tokens): CommandBody {
  t.sp();
  t.char('(');
  const criteria: SortCriterion[] = [];
  do {
    let word = t.atom().toUpperCase();
    const reverse = word === 'REVERSE';
    if (reverse) {
      t.sp();
      word = t.atom().toUpperCase();
    }
    if (!SORT_KEYS.has(word)) t.fail('sort-key');
    criteria.push({ key: word as SortCriterion['key'], reverse });
  } while (t.trySp());
  t.char(')');
  t.sp();
  const { charset, key } = searchCriteria(t);
  return { name: 'SORT', criteria, charset, key };
}

/** thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria   (RFC 5256 §5) */
export function parseThread(t: Tokens): CommandBody {
  t.sp();
  const algorithm = t.atom().toUpperCase();
  if (algorithm !== 'ORDEREDSUBJECT' && algorithm !== 'REFERENCES')
    t.fail('ORDEREDSUBJECT or REFERENCES');
  t.sp();
  const { charset, key } = searchCriteria(t);
  return { name: 'THREAD', algorithm, charset, key };
}
