import { ParseError } from '../errors.js';
import { decodeModifiedUtf7 as decodeMailboxName } from '../../mutf7.js';

/**
 * A mailbox name or pattern that was not valid modified UTF-7, marked by a leading NUL:
 * storage refuses names holding controls (src/store/README.md, Names), and no mailbox
 * name contains one, so a pattern built from it matches nothing.
 */
export function undecodable(raw: string): string {
  return `\u0000${raw}`;
}

/**
 * A cursor over one complete command: the command line with every literal's bytes
 * inline after its `{n}` / `{n+}` CRLF (the input layer has already read them), and
 * the final CRLF stripped. Rules follow RFC 3501 §9 (formal syntax); each method names
 * the ABNF rule it reads.
 */
export class Tokens {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  fail(what: string): never {
    throw new ParseError(`Syntax error: expected ${what}`);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  peek(): number {
    return this.pos < this.buf.length ? (this.buf[this.pos] as number) : -1;
  }

  /** SP */
  sp(): void {
    if (this.peek() !== 0x20) this.fail('SP');
    this.pos++;
  }

  trySp(): boolean {
    if (this.peek() !== 0x20) return false;
    this.pos++;
    return true;
  }

  char(c: string): void {
    if (this.peek() !== c.charCodeAt(0)) this.fail(`'${c}'`);
    this.pos++;
  }

  tryChar(c: string): boolean {
    if (this.peek() !== c.charCodeAt(0)) return false;
    this.pos++;
    return true;
  }

  end(): void {
    if (!this.done) this.fail('end of command');
  }

  /** Reads bytes while `ok(byte)`; at least one. */
  private run(ok: (b: number) => boolean, what: string): string {
    const start = this.pos;
    while (this.pos < this.buf.length && ok(this.buf[this.pos] as number)) this.pos++;
    if (this.pos === start) this.fail(what);
    return this.buf.toString('latin1', start, this.pos);
  }

  /** atom = 1*ATOM-CHAR */
  atom(): string {
    return this.run(isAtomChar, 'atom');
  }

  /** tag = 1*<any ASTRING-CHAR except "+"> */
  tag(): string {
    return this.run((b) => isAstringChar(b) && b !== 0x2b, 'tag');
  }

  /** An atom including `]` (ASTRING-CHAR), as in astring. */
  astringAtom(): string {
    return this.run(isAstringChar, 'astring');
  }

  /** number = 1*DIGIT (32-bit unsigned) */
  number(): number {
    const s = this.run(isDigit, 'number');
    const n = Number(s);
    if (s.length > 10 || n > 0xffffffff) this.fail('number below 2^32');
    return n;
  }

  /** mod-sequence-value = 1*DIGIT, at most 2^63 - 1 (RFC 7162 §7); 0 only where `zeroOk`. */
  modseq(zeroOk = false): number {
    const s = this.run(isDigit, 'mod-sequence-value');
    const n = Number(s);
    // beyond 2^53 a JavaScript number is inexact; no mailbox gets near it
    if (s.length > 16 || !Number.isSafeInteger(n)) this.fail('mod-sequence-value below 2^53');
    if (n === 0 && !zeroOk) this.fail('non-zero mod-sequence-value');
    return n;
  }

  /** nz-number = digit-nz *DIGIT */
  nzNumber(): number {
    const n = this.number();
    if (n === 0) this.fail('non-zero number');
    return n;
  }

  /** quoted = DQUOTE *QUOTED-CHAR DQUOTE */
  quoted(): Buffer {
    this.char('"');
    const out: number[] = [];
    for (;;) {
      const b = this.peek();
      if (b === -1 || b === 0x0d || b === 0x0a) this.fail('closing quote');
      this.pos++;
      if (b === 0x22) break;
      if (b === 0x5c) {
        const e = this.peek();
        if (e !== 0x22 && e !== 0x5c) this.fail('quoted-special after backslash');
        this.pos++;
        out.push(e);
      } else out.push(b);
    }
    return Buffer.from(out);
  }

  /** literal = "{" number ["+"] "}" CRLF *CHAR8 */
  literal(): Buffer {
    this.char('{');
    const n = this.number();
    this.tryChar('+');
    this.char('}');
    if (this.peek() !== 0x0d || this.buf[this.pos + 1] !== 0x0a)
      this.fail('CRLF after literal size');
    this.pos += 2;
    if (this.pos + n > this.buf.length) this.fail('literal data');
    const data = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return data;
  }

  /** string = quoted / literal */
  string(): Buffer {
    if (this.peek() === 0x22) return this.quoted();
    if (this.peek() === 0x7b) return this.literal();
    return this.fail('string');
  }

  /** astring = 1*ASTRING-CHAR / string */
  astring(): Buffer {
    const b = this.peek();
    if (b === 0x22 || b === 0x7b) return this.string();
    return Buffer.from(this.astringAtom(), 'latin1');
  }

  astringText(): string {
    return this.astring().toString('utf8');
  }

  /**
   * mailbox = "INBOX" / astring, decoded from modified UTF-7. A name that is a valid
   * astring but not valid modified UTF-7 is no syntax error (no BAD): it comes back as
   * `undecodable(raw)`, a name no mailbox can have, so SELECT, CREATE, … answer NO and
   * LIST matches nothing, as Dovecot does.
   */
  mailbox(): string {
    const raw = this.astring().toString('utf8');
    const name = decodeMailboxName(raw);
    if (name === null) return undecodable(raw);
    return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
  }

  /** list-mailbox = 1*list-char / string (list-char adds the wildcards % and *). */
  listMailbox(): string {
    const b = this.peek();
    const raw =
      b === 0x22 || b === 0x7b
        ? this.string().toString('utf8')
        : this.run((c) => isAstringChar(c) || c === 0x25 || c === 0x2a, 'list-mailbox');
    return decodeMailboxName(raw) ?? undecodable(raw);
  }

  /** Case-insensitive keyword match (atom-like, stops at non-atom chars). */
  tryKeyword(word: string): boolean {
    const end = this.pos + word.length;
    if (end > this.buf.length) return false;
    if (this.buf.toString('latin1', this.pos, end).toUpperCase() !== word.toUpperCase())
      return false;
    const next = end < this.buf.length ? (this.buf[end] as number) : -1;
    if (next !== -1 && isAtomChar(next) && isAtomChar(word.charCodeAt(word.length - 1)))
      return false;
    this.pos = end;
    return true;
  }

  /** flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" / flag-keyword / flag-extension */
  flag(): string {
    if (this.tryChar('\\')) {
      const name = this.atom();
      const canonical = SYSTEM_FLAGS.get(name.toLowerCase());
      return canonical ?? `\\${name}`;
    }
    return this.atom();
  }

  /** flag-list = "(" [flag *(SP flag)] ")" */
  flagList(): string[] {
    this.char('(');
    const flags: string[] = [];
    if (!this.tryChar(')')) {
      do flags.push(this.flag());
      while (this.trySp());
      this.char(')');
    }
    return flags;
  }

  /** A run of letters, digits and dots, upper-cased (fetch-att and store-att names). */
  dottedWord(): string {
    const start = this.pos;
    while (!this.done) {
      const b = this.peek();
      if (!(isDigit(b) || b === 0x2e || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)))
        break;
      this.pos++;
    }
    return this.buf.toString('latin1', start, this.pos).toUpperCase();
  }
}

const SYSTEM_FLAGS = new Map(
  ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft', '\\Recent'].map((f) => [
    f.toLowerCase().slice(1),
    f,
  ]),
);

export function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

/** ATOM-CHAR = <any CHAR except atom-specials>; atom-specials = "(" ")" "{" SP CTL list-wildcards quoted-specials resp-specials */
export function isAtomChar(b: number): boolean {
  if (b <= 0x20 || b >= 0x7f) return false;
  return !(
    b === 0x28 ||
    b === 0x29 ||
    b === 0x7b ||
    b === 0x25 ||
    b === 0x2a ||
    b === 0x22 ||
    b === 0x5c ||
    b === 0x5d
  );
}

/** ASTRING-CHAR = ATOM-CHAR / resp-specials */
export function isAstringChar(b: number): boolean {
  return isAtomChar(b) || b === 0x5d;
}
