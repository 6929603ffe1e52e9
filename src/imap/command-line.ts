/**
 * What the client relay (client-relay.ts) reads from a command's first line or changes in
 * it: the literal announcement it rewrites, the mailbox a SELECT/EXAMINE names (for the
 * selection tracker, selection.ts), and the UID it adds to a partial FETCH. Pure
 * functions on the line's bytes (latin1 text for matching).
 */

/** The line without its literal announcement `{N}` / `{N+}`. */
export function beforeLiteral(line: Buffer): Buffer {
  return line.subarray(0, line.lastIndexOf(0x7b));
}

const PARTIAL_PAST_START = /\]<[1-9][0-9]*\.[0-9]+>/;

/**
 * A partial fetch that starts past byte 0 is patched from the plan of its message,
 * found by UID: a plain FETCH that asks for one without the UID gets `UID` added to its
 * items (RFC 3501 §7.4.2 lets a server send items not asked for; clients ignore them).
 */
export function withUid(raw: Buffer, text: string): Buffer {
  if (!PARTIAL_PAST_START.test(text) || /[ (]UID[ )]/i.test(text)) return raw;
  const ending = raw.subarray(text.length);
  const open = text.indexOf('(');
  if (open !== -1)
    return Buffer.concat([
      Buffer.from(`${text.slice(0, open + 1)}UID ${text.slice(open + 1)}`, 'latin1'),
      ending,
    ]);
  const match = /^(\S+ FETCH \S+ )(\S+)$/i.exec(text);
  if (match === null) return raw;
  return Buffer.concat([Buffer.from(`${match[1]}(UID ${match[2]})`, 'latin1'), ending]);
}

/** The first argument: a quoted string (unescaped) or an atom. */
export function parseMailbox(rest: string): string | null {
  if (rest.startsWith('"')) {
    let out = '';
    for (let i = 1; i < rest.length; i++) {
      const c = rest[i]!;
      if (c === '\\') out += rest[++i] ?? '';
      else if (c === '"') return Buffer.from(out, 'latin1').toString('utf8');
      else out += c;
    }
    return null;
  }
  const atom = rest.split(/[ (]/)[0] ?? '';
  return atom === '' ? null : Buffer.from(atom, 'latin1').toString('utf8');
}

export function normalizeMailbox(name: string): string {
  return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
}
