/**
 * Response values (RFC 3501 §4): atoms, quoted strings, literals, NIL, lists. Strings
 * that a quoted string cannot carry (CR, LF, NUL, 8-bit, long) become literals, so a
 * header value can never break the response framing (imapflow's rule: no CRLF in tokens).
 */

/** TEXT-CHAR without CR and LF (and no NUL or 8-bit): what a quoted string may carry. */
function quotable(value: string): boolean {
  if (value.length >= 1024) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0x7f) return false;
  }
  return true;
}

/** A string value as quoted or literal text. */
export function str(value: string): string {
  if (quotable(value)) return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  const bytes = Buffer.byteLength(value, 'utf8');
  return `{${bytes}}\r\n${value}`;
}

/** nstring = string / nil */
export function nstr(value: string | null | undefined): string {
  return value === null || value === undefined ? 'NIL' : str(value);
}

/** astring for mailbox names and the like: an atom when it is one, else a string. */
export function astr(value: string): string {
  return value.length > 0 && /^[\x21\x23-\x24\x26-\x27\x2b-\x5b\x5e-\x7a\x7c\x7e]+$/.test(value)
    ? value
    : str(value);
}

export function list(items: string[]): string {
  return `(${items.join(' ')})`;
}

/** flag-list for FLAGS responses; `\Recent` is session state, added by the caller. */
export function flagList(flags: readonly string[], recent = false): string {
  return list(recent ? [...flags, '\\Recent'] : [...flags]);
}
