import type { MessageRecord, SearchFields } from '../../backend.js';
import { ADDRESS_FIELDS, dayOf, type SearchField } from '../../mime/search-fields.js';
import { matchSet } from '../commands/sequence.js';
import type { SearchKey } from '../commands/types.js';

/**
 * SEARCH without per-message I/O: a search key compiled once into a synchronous test
 * of a message's record (flags, dates, size, mod-sequence, numbers) and its indexed
 * search fields (see ../../mime/search-fields.ts). The answer is three-valued: true or
 * false when those facts decide, undefined when only the message itself can (a BODY or
 * TEXT key, a HEADER value that the raw header may contain, a message without indexed
 * fields); search.ts then checks that message the slow way, with the same semantics.
 */

/** One message as the compiled test sees it; one object is reused for a whole search. */
export interface QuickMessage {
  record: MessageRecord;
  seq: number;
  /** The message's indexed fields, undefined when it has none. */
  fields: SearchFields | undefined;
  isRecent: (uid: number) => boolean;
  count: number;
  maxUid: number;
}

export type QuickTest = (m: QuickMessage) => boolean | undefined;

/** The indexed fields a key reads (empty: the records decide it alone). */
export function fieldsNeeded(key: SearchKey, into = new Set<SearchField>()): Set<SearchField> {
  switch (key.type) {
    case 'header':
      into.add(isEnvelopeField(key.field) && key.value !== '' ? key.field : 'header');
      break;
    case 'sentbefore':
    case 'senton':
    case 'sentsince':
      into.add('sentDay');
      break;
    case 'not':
      fieldsNeeded(key.key, into);
      break;
    case 'or':
      fieldsNeeded(key.a, into);
      fieldsNeeded(key.b, into);
      break;
    case 'and':
      for (const k of key.keys) fieldsNeeded(k, into);
      break;
    default:
      break;
  }
  return into;
}

const ENVELOPE_FIELDS: ReadonlySet<string> = new Set([...ADDRESS_FIELDS, 'subject']);

/** FROM / TO / CC / BCC / SUBJECT: matched against the envelope, not the raw header. */
export function isEnvelopeField(field: string): field is keyof SearchFields {
  return ENVELOPE_FIELDS.has(field);
}

const PRINTABLE = /^[\x21-\x7e]+$/;
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A first test of SEARCH HEADER `field` `value` on a lower-cased header block: false
 * only when no field `field` of the message can contain `value`, because the field
 * name never starts a line, or the value is plain ASCII without spaces (so folding
 * cannot split it and decoding cannot create it) and neither it nor an encoded word
 * (`=?`) occurs anywhere in the header. With an empty value, only the first half.
 */
export function headerPrefilter(field: string, value: string): (text: string) => boolean {
  if (!PRINTABLE.test(field)) return () => true;
  const starts = `${field}:`;
  const inside = `\n${field}:`;
  // the name may be followed by spaces before the colon (RFC 5322 §4.5.3, obsolete syntax)
  const loose = new RegExp(`(^|\\n)${escapeRegExp(field)}[ \\t]*:`);
  const needle = value !== '' && PRINTABLE.test(value) ? value.toLowerCase() : null;
  return (text) => {
    if (!text.includes(field)) return false;
    if (!text.startsWith(starts) && !text.includes(inside) && !loose.test(text)) return false;
    if (needle === null) return true;
    return text.includes(needle) || text.includes('=?');
  };
}

function flagTest(flag: string, negate: boolean): QuickTest {
  const lower = flag.toLowerCase();
  return (m) => m.record.flags.some((f) => f === flag || f.toLowerCase() === lower) !== negate;
}

export function compileQuick(key: SearchKey): QuickTest {
  switch (key.type) {
    case 'all':
      return () => true;
    case 'answered':
    case 'deleted':
    case 'draft':
    case 'flagged':
    case 'seen':
      return flagTest(`\\${key.type[0]?.toUpperCase()}${key.type.slice(1)}`, false);
    case 'unanswered':
    case 'undeleted':
    case 'undraft':
    case 'unflagged':
    case 'unseen':
      return flagTest(`\\${key.type[2]?.toUpperCase()}${key.type.slice(3)}`, true);
    case 'recent':
      return (m) => m.isRecent(m.record.uid);
    case 'old':
      return (m) => !m.isRecent(m.record.uid);
    case 'new': {
      const unseen = flagTest('\\Seen', true);
      return (m) => m.isRecent(m.record.uid) && unseen(m) === true;
    }
    case 'keyword':
    case 'unkeyword':
      return flagTest(key.flag, key.type === 'unkeyword');
    case 'before':
    case 'on':
    case 'since': {
      const t = key.date.getTime();
      const type = key.type;
      return (m) => {
        const day = dayOf(m.record.internalDate);
        return type === 'before' ? day < t : type === 'on' ? day === t : day >= t;
      };
    }
    case 'sentbefore':
    case 'senton':
    case 'sentsince': {
      const t = key.date.getTime();
      const type = key.type;
      return (m) => {
        if (m.fields === undefined) return undefined;
        const day = m.fields.sentDay;
        if (day === null) return false;
        return type === 'sentbefore' ? day < t : type === 'senton' ? day === t : day >= t;
      };
    }
    case 'modseq':
      return (m) => m.record.modseq >= key.modseq;
    case 'larger':
      return (m) => m.record.size > key.size;
    case 'smaller':
      return (m) => m.record.size < key.size;
    case 'seqset':
      return (m) => matchSet(key.set, m.count, m.seq);
    case 'uid':
      return (m) => matchSet(key.set, m.maxUid, m.record.uid);
    case 'header':
      return headerTest(key.field, key.value);
    case 'body':
    case 'text':
      return () => undefined;
    case 'not': {
      const inner = compileQuick(key.key);
      return (m) => {
        const v = inner(m);
        return v === undefined ? undefined : !v;
      };
    }
    case 'or': {
      const a = compileQuick(key.a);
      const b = compileQuick(key.b);
      return (m) => {
        const x = a(m);
        if (x === true) return true;
        const y = b(m);
        if (y === true) return true;
        return x === false && y === false ? false : undefined;
      };
    }
    case 'and': {
      const tests = key.keys.map(compileQuick);
      return (m) => {
        let open = false;
        for (const test of tests) {
          const v = test(m);
          if (v === false) return false;
          if (v === undefined) open = true;
        }
        return open ? undefined : true;
      };
    }
  }
}

function headerTest(field: string, value: string): QuickTest {
  const prefilter = headerPrefilter(field, value);
  const undecided = (m: QuickMessage): boolean | undefined => {
    const header = m.fields?.header;
    if (header === undefined || header === null) return undefined;
    return prefilter(header) ? undefined : false;
  };
  // an empty string matches every message that has the field (RFC 3501 §6.4.4)
  if (value === '' || !isEnvelopeField(field)) return undecided;
  const needle = value.toLowerCase();
  return (m) => {
    if (m.fields === undefined) return undefined;
    return (m.fields[field] as string).includes(needle);
  };
}
