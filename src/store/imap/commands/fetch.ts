import { parseSequenceSet } from './sequence.js';
import type { CommandBody, FetchItem, Section } from './types.js';
import type { Tokens } from './tokens.js';

const SIMPLE: ReadonlySet<string> = new Set([
  'FLAGS',
  'UID',
  'INTERNALDATE',
  'RFC822.SIZE',
  'ENVELOPE',
  'BODYSTRUCTURE',
  'RFC822',
  'RFC822.HEADER',
  'RFC822.TEXT',
  'MODSEQ',
]);

const MACROS: Record<string, string[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

/**
 * fetch     = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")
 * fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] /
 *             "BODY" ["STRUCTURE"] / "UID" / "BODY" section ["<" number "." nz-number ">"] /
 *             "BODY.PEEK" section ["<" number "." nz-number ">"]
 */
export function parseFetch(t: Tokens): CommandBody {
  t.sp();
  const set = parseSequenceSet(t);
  t.sp();
  const items: FetchItem[] = [];
  if (t.tryChar('(')) {
    do items.push(...fetchAtt(t, false));
    while (t.trySp());
    t.char(')');
  } else items.push(...fetchAtt(t, true));
  if (!t.trySp()) {
    t.end();
    return { name: 'FETCH', set, items };
  }
  // fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
  // fetch-modifier  = "CHANGEDSINCE" SP mod-sequence-value / "VANISHED"   (RFC 7162 §7)
  let changedSince: number | undefined;
  let vanished = false;
  t.char('(');
  do {
    if (t.tryKeyword('CHANGEDSINCE') && changedSince === undefined) {
      t.sp();
      changedSince = t.modseq();
    } else if (t.tryKeyword('VANISHED') && !vanished) vanished = true;
    else t.fail('fetch-modifier');
  } while (t.trySp());
  t.char(')');
  t.end();
  // VANISHED needs CHANGEDSINCE (RFC 7162 §3.2.6)
  if (vanished && changedSince === undefined) t.fail('CHANGEDSINCE with VANISHED');
  return { name: 'FETCH', set, items, changedSince, vanished };
}

function fetchAtt(t: Tokens, macroAllowed: boolean): FetchItem[] {
  const word = t.dottedWord();
  if (macroAllowed && MACROS[word] !== undefined)
    return (MACROS[word] as string[]).map((type) => ({ type }) as FetchItem);
  if ((word === 'BODY' || word === 'BODY.PEEK') && t.peek() === 0x5b) {
    const section = parseSection(t);
    let partial: { start: number; length: number } | null = null;
    if (t.tryChar('<')) {
      const s = t.number();
      t.char('.');
      const length = t.nzNumber();
      t.char('>');
      partial = { start: s, length };
    }
    return [{ type: 'BODY[]', peek: word === 'BODY.PEEK', section, partial }];
  }
  if (word === 'BODY') return [{ type: 'BODY' }];
  if (SIMPLE.has(word)) return [{ type: word } as FetchItem];
  return t.fail('fetch-att');
}

/**
 * section         = "[" [section-spec] "]"
 * section-spec    = section-msgtext / (section-part ["." section-text])
 * section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
 * section-text    = section-msgtext / "MIME"
 * section-part    = nz-number *("." nz-number)
 * header-list     = "(" header-fld-name *(SP header-fld-name) ")"
 */
export function parseSection(t: Tokens): Section {
  t.char('[');
  const section: Section = { path: [], specifier: '', fields: [] };
  if (t.tryChar(']')) return section;
  while (t.peek() >= 0x30 && t.peek() <= 0x39) {
    section.path.push(t.nzNumber());
    if (section.path.length > 64) t.fail('shorter section');
    if (!t.tryChar('.')) break;
  }
  if (t.peek() !== 0x5d) {
    if (t.tryKeyword('HEADER.FIELDS.NOT')) section.specifier = 'HEADER.FIELDS.NOT';
    else if (t.tryKeyword('HEADER.FIELDS')) section.specifier = 'HEADER.FIELDS';
    else if (t.tryKeyword('HEADER')) section.specifier = 'HEADER';
    else if (t.tryKeyword('TEXT')) section.specifier = 'TEXT';
    else if (section.path.length > 0 && t.tryKeyword('MIME')) section.specifier = 'MIME';
    else t.fail('section-text');
    if (section.specifier.startsWith('HEADER.FIELDS')) {
      t.sp();
      t.char('(');
      do section.fields.push(t.astring().toString('latin1'));
      while (t.trySp());
      t.char(')');
    }
  } else if (t.buf[t.pos - 1] === 0x2e) t.fail('section-text after "."');
  t.char(']');
  return section;
}
