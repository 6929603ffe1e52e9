import { ParseError } from '../errors.js';
import { parseDate } from './dates.js';
import { parseSequenceSet } from './sequence.js';
import type { CommandBody, SearchKey, SearchReturn } from './types.js';
import type { Tokens } from './tokens.js';

const MAX_DEPTH = 32;

/** Charsets whose bytes we can read as UTF-8 (RFC 3501 requires US-ASCII; UTF-8 is what clients send). */
const CHARSETS = new Set(['UTF-8', 'US-ASCII']);

/** Thrown for a charset we do not support: answered `NO [BADCHARSET]`, not BAD. */
export class BadCharsetError extends ParseError {}

/**
 * search = "SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)
 * search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"  (RFC 4731)
 * search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT"
 */
export function parseSearch(t: Tokens): CommandBody {
  t.sp();
  let returns: SearchReturn[] | undefined;
  if (t.tryKeyword('RETURN')) {
    t.sp();
    returns = searchReturnOpts(t);
    t.sp();
  }
  let charset: string | null = null;
  if (t.tryKeyword('CHARSET')) {
    t.sp();
    charset = t.astringText().toUpperCase();
    t.sp();
  }
  const key = searchKeys(t);
  t.end();
  checkCharset(charset);
  return returns === undefined
    ? { name: 'SEARCH', charset, key }
    : { name: 'SEARCH', charset, key, returns };
}

const RETURN_OPTS: ReadonlySet<string> = new Set(['MIN', 'MAX', 'ALL', 'COUNT']);

function searchReturnOpts(t: Tokens): SearchReturn[] {
  t.char('(');
  const opts = new Set<SearchReturn>();
  if (!t.tryChar(')')) {
    do {
      const opt = t.atom().toUpperCase();
      // SAVE (RFC 5182 SEARCHRES) is not offered, so it is a syntax error like any unknown option.
      if (!RETURN_OPTS.has(opt)) t.fail('MIN, MAX, ALL or COUNT');
      opts.add(opt as SearchReturn);
    } while (t.trySp());
    t.char(')');
  }
  return opts.size === 0 ? ['ALL'] : [...opts];
}

/** 1*(SP search-key) after the command's own arguments, as one key (an AND of several). */
export function searchKeys(t: Tokens): SearchKey {
  const keys: SearchKey[] = [];
  do keys.push(searchKey(t, 0));
  while (t.trySp());
  return keys.length === 1 ? (keys[0] as SearchKey) : { type: 'and', keys };
}

export function checkCharset(charset: string | null): void {
  if (charset !== null && !CHARSETS.has(charset)) throw new BadCharsetError('Unsupported charset');
}

const FLAG_KEYS = new Set([
  'ALL',
  'ANSWERED',
  'DELETED',
  'DRAFT',
  'FLAGGED',
  'NEW',
  'OLD',
  'RECENT',
  'SEEN',
  'UNANSWERED',
  'UNDELETED',
  'UNDRAFT',
  'UNFLAGGED',
  'UNSEEN',
]);
const DATE_KEYS = new Set(['BEFORE', 'ON', 'SINCE', 'SENTBEFORE', 'SENTON', 'SENTSINCE']);
const ADDRESS_KEYS = new Set(['BCC', 'CC', 'FROM', 'SUBJECT', 'TO']);

/**
 * search-key = "ALL" / "ANSWERED" / "BCC" SP astring / "BEFORE" SP date / "BODY" SP astring /
 *   "CC" SP astring / "DELETED" / "FLAGGED" / "FROM" SP astring / "KEYWORD" SP flag-keyword /
 *   "NEW" / "OLD" / "ON" SP date / "RECENT" / "SEEN" / "SINCE" SP date / "SUBJECT" SP astring /
 *   "TEXT" SP astring / "TO" SP astring / "UNANSWERED" / "UNDELETED" / "UNFLAGGED" /
 *   "UNKEYWORD" SP flag-keyword / "UNSEEN" / "DRAFT" / "HEADER" SP header-fld-name SP astring /
 *   "LARGER" SP number / "NOT" SP search-key / "OR" SP search-key SP search-key /
 *   "SENTBEFORE" SP date / "SENTON" SP date / "SENTSINCE" SP date / "SMALLER" SP number /
 *   "UID" SP sequence-set / "UNDRAFT" / sequence-set / "(" search-key *(SP search-key) ")"
 */
function searchKey(t: Tokens, depth: number): SearchKey {
  if (depth > MAX_DEPTH) t.fail('less deeply nested search');
  const b = t.peek();
  if (b === 0x28) {
    t.pos++;
    const keys: SearchKey[] = [];
    do keys.push(searchKey(t, depth + 1));
    while (t.trySp());
    t.char(')');
    return { type: 'and', keys };
  }
  if ((b >= 0x30 && b <= 0x39) || b === 0x2a) return { type: 'seqset', set: parseSequenceSet(t) };
  const word = t.atom().toUpperCase();
  if (FLAG_KEYS.has(word)) return { type: word.toLowerCase() } as SearchKey;
  if (DATE_KEYS.has(word)) {
    t.sp();
    return { type: word.toLowerCase(), date: parseDate(t) } as SearchKey;
  }
  if (ADDRESS_KEYS.has(word)) {
    t.sp();
    return { type: 'header', field: word.toLowerCase(), value: t.astringText() };
  }
  switch (word) {
    case 'BODY':
    case 'TEXT':
      t.sp();
      return { type: word === 'BODY' ? 'body' : 'text', value: t.astringText() };
    case 'KEYWORD':
    case 'UNKEYWORD':
      t.sp();
      return { type: word === 'KEYWORD' ? 'keyword' : 'unkeyword', flag: t.atom() };
    case 'HEADER': {
      t.sp();
      const field = t.astring().toString('latin1').toLowerCase();
      t.sp();
      return { type: 'header', field, value: t.astringText() };
    }
    case 'LARGER':
    case 'SMALLER':
      t.sp();
      return { type: word === 'LARGER' ? 'larger' : 'smaller', size: t.number() };
    case 'NOT':
      t.sp();
      return { type: 'not', key: searchKey(t, depth + 1) };
    case 'OR': {
      t.sp();
      const a = searchKey(t, depth + 1);
      t.sp();
      return { type: 'or', a, b: searchKey(t, depth + 1) };
    }
    case 'UID':
      t.sp();
      return { type: 'uid', set: parseSequenceSet(t) };
    case 'MODSEQ': {
      // "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162 §7);
      // there is one mod-sequence per message here, so the entry is read and not used
      t.sp();
      if (t.peek() === 0x22) {
        t.quoted();
        t.sp();
        const type = t.atom().toLowerCase();
        if (type !== 'priv' && type !== 'shared' && type !== 'all') t.fail('entry-type-req');
        t.sp();
      }
      return { type: 'modseq', modseq: t.modseq(true) };
    }
    default:
      return t.fail('search-key');
  }
}
