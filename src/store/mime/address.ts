import type { Address } from './types.js';

/**
 * RFC 5322 address-list parsing into IMAP ENVELOPE address structures (name, adl,
 * mailbox, host), groups flattened as RFC 3501 §7.4.2 wants. Hand-written because
 * nodemailer's addressparser drops the source route (adl) and does not report groups
 * in IMAP's marker form. Mirrors Dovecot: quotes removed from names and local parts,
 * encoded-words kept, the last comment inside or after a bare addr-spec used as its
 * name (never one before it or after an angle address), a missing
 * domain or mailbox reported as MISSING_DOMAIN / MISSING_MAILBOX. Never throws.
 */

/** `spaced`: whitespace (or a comment) came before the token, so a phrase keeps a space there. */
type TokenInput =
  | { kind: 'word'; text: string; quoted: boolean }
  | { kind: 'special'; text: string }
  | { kind: 'comment'; text: string };
type Token = TokenInput & { spaced: boolean };

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let spaced = false;
  const push = (t: TokenInput): void => {
    tokens.push({ ...t, spaced });
    spaced = t.kind === 'comment';
  };
  while (i < input.length) {
    const ch = input[i] as string;
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') {
      spaced = true;
      i++;
    } else if (ch === '"') {
      let text = '';
      i++;
      while (i < input.length && input[i] !== '"') {
        if (input[i] === '\\' && i + 1 < input.length) i++;
        text += input[i];
        i++;
      }
      i++;
      push({ kind: 'word', text, quoted: true });
    } else if (ch === '(') {
      let depth = 1;
      let text = '';
      i++;
      while (i < input.length && depth > 0) {
        const c = input[i] as string;
        if (c === '\\' && i + 1 < input.length) {
          text += input[i + 1];
          i += 2;
          continue;
        }
        if (c === '(') depth++;
        else if (c === ')') depth--;
        if (depth > 0) text += c;
        i++;
      }
      push({ kind: 'comment', text: text.trim() });
    } else if (ch === '[') {
      const close = input.indexOf(']', i);
      const end = close === -1 ? input.length : close + 1;
      push({ kind: 'word', text: input.slice(i, end), quoted: false });
      i = end;
    } else if ('<>@,;:.'.includes(ch)) {
      push({ kind: 'special', text: ch });
      i++;
    } else {
      let text = '';
      while (i < input.length && !' \t\r\n"(<>@,;:.['.includes(input[i] as string)) {
        text += input[i];
        i++;
      }
      push({ kind: 'word', text, quoted: false });
    }
  }
  return tokens;
}

const MISSING_MAILBOX = 'MISSING_MAILBOX';
const MISSING_DOMAIN = 'MISSING_DOMAIN';

class Parser {
  private pos = 0;
  private lastComment: string | null = null;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isSpecial(text: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === 'special' && t.text === text;
  }

  /** Phrase words up to a special that ends it; comments remembered for the name fallback. */
  private phrase(stopAtDot: boolean): Token[] {
    const words: Token[] = [];
    for (let t = this.peek(); t !== undefined; t = this.peek()) {
      if (t.kind === 'comment') {
        if (t.text.length > 0) this.lastComment = t.text;
        this.pos++;
      } else if (t.kind === 'word' || (t.text === '.' && !stopAtDot)) {
        words.push(t);
        this.pos++;
      } else {
        break;
      }
    }
    return words;
  }

  /** local-part or domain: words joined by dots, no spaces. */
  private dotted(): string {
    let out = '';
    for (let t = this.peek(); t !== undefined; t = this.peek()) {
      if (t.kind === 'comment') {
        if (t.text.length > 0) this.lastComment = t.text;
      } else if (t.kind === 'word' || t.text === '.') {
        out += t.text;
      } else {
        break;
      }
      this.pos++;
    }
    return out;
  }

  private static phraseText(words: Token[]): string {
    let out = '';
    for (const w of words) out += out.length > 0 && w.spaced ? ` ${w.text}` : w.text;
    return out;
  }

  private angle(name: string | null): Address {
    this.pos++; // '<'
    let adl: string | null = null;
    if (this.isSpecial('@')) {
      const route: string[] = [];
      while (this.isSpecial('@') || this.isSpecial(',')) {
        if (this.isSpecial(',')) {
          this.pos++;
          continue;
        }
        this.pos++;
        route.push(`@${this.dotted()}`);
      }
      if (this.isSpecial(':')) this.pos++;
      adl = route.join(',');
    }
    const local = this.dotted();
    let host = '';
    if (this.isSpecial('@')) {
      this.pos++;
      host = this.dotted();
    }
    while (this.peek() !== undefined && !this.isSpecial('>')) this.pos++;
    if (this.isSpecial('>')) this.pos++;
    return {
      name,
      adl,
      mailbox: local.length > 0 ? local : MISSING_MAILBOX,
      host: host.length > 0 ? host : MISSING_DOMAIN,
    };
  }

  /** One mailbox (or group when `allowGroup`); null when nothing usable was there. */
  private address(out: Address[], allowGroup: boolean): void {
    this.lastComment = null;
    const start = this.pos;
    const words = this.phrase(false);
    if (this.isSpecial('<')) {
      const phrase = Parser.phraseText(words);
      const name = phrase.length > 0 ? phrase : null;
      const addr = this.angle(name);
      this.phrase(true); // trailing comments: never a name after an angle address (Dovecot)
      out.push(addr);
      return;
    }
    if (this.isSpecial(':') && allowGroup) {
      this.pos++;
      out.push({ name: null, adl: null, mailbox: Parser.phraseText(words), host: null });
      while (this.peek() !== undefined && !this.isSpecial(';')) {
        if (this.isSpecial(',')) {
          this.pos++;
          continue;
        }
        const before = this.pos;
        this.address(out, false);
        if (this.pos === before) this.pos++;
      }
      if (this.isSpecial(';')) this.pos++;
      out.push({ name: null, adl: null, mailbox: null, host: null });
      return;
    }
    // addr-spec: re-read the words as a dotted local part; comments before it are
    // ignored, the last one inside or after it becomes the name (as Dovecot does)
    this.pos = start;
    while (this.peek()?.kind === 'comment') this.pos++;
    this.lastComment = null;
    const local = this.dotted();
    let host = '';
    if (this.isSpecial('@')) {
      this.pos++;
      host = this.dotted();
    }
    this.phrase(true);
    if (local.length === 0 && host.length === 0) return;
    out.push({
      name: this.lastComment,
      adl: null,
      mailbox: local.length > 0 ? local : MISSING_MAILBOX,
      host: host.length > 0 ? host : MISSING_DOMAIN,
    });
  }

  list(): Address[] {
    const out: Address[] = [];
    while (this.peek() !== undefined) {
      if (this.isSpecial(',') || this.isSpecial(';') || this.isSpecial('>')) {
        this.pos++;
        continue;
      }
      const before = this.pos;
      this.address(out, true);
      if (this.pos === before) this.pos++;
    }
    return out;
  }
}

/** Parses an address-list header value (To, From, Cc, …). Empty input gives an empty list. */
export function parseAddressList(value: string | null): Address[] {
  if (value === null) return [];
  try {
    return new Parser(tokenize(value)).list();
  } catch {
    return [];
  }
}
