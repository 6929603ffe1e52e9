/**
 * A small reader for IMAP response data (RFC 3501 §4: lists, quoted strings, literals,
 * NIL, atoms) so tests can compare a server's raw BODYSTRUCTURE value by value without a
 * client library re-interpreting it (imapflow lower-cases and decodes parameters).
 */
export type Sexp = string | null | Sexp[];

export function parseSexp(text: string): Sexp[] {
  let i = 0;
  const skipSpace = (): void => {
    while (text[i] === ' ' || text[i] === '\r' || text[i] === '\n') i++;
  };
  const value = (): Sexp => {
    skipSpace();
    const ch = text[i];
    if (ch === '(') {
      i++;
      const items: Sexp[] = [];
      for (skipSpace(); text[i] !== ')' && i < text.length; skipSpace()) items.push(value());
      i++;
      return items;
    }
    if (ch === '"') {
      let out = '';
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        out += text[i];
      }
      i++;
      return out;
    }
    if (ch === '{') {
      const close = text.indexOf('}', i);
      const n = Number(text.slice(i + 1, close));
      const start = text.indexOf('\n', close) + 1;
      i = start + n;
      return text.slice(start, start + n);
    }
    const m = /^[^\s()"]+/.exec(text.slice(i));
    const atom = m === null ? '' : m[0];
    i += Math.max(1, atom.length);
    return atom.toUpperCase() === 'NIL' ? null : atom;
  };
  const out: Sexp[] = [];
  for (skipSpace(); i < text.length; skipSpace()) out.push(value());
  return out;
}

/** The value following `key` in a FETCH response list, e.g. `BODYSTRUCTURE`. */
export function fetchItem(response: string, key: string): Sexp | undefined {
  for (const item of parseSexp(response)) {
    if (!Array.isArray(item)) continue;
    const at = item.findIndex((x) => typeof x === 'string' && x.toUpperCase() === key);
    if (at !== -1) return item[at + 1];
  }
  return undefined;
}
