/**
 * The differential IMAP test's client side (test/helpers/imap-diff-run.ts runs it): a raw
 * session that keeps its own model of the selected mailbox (sequence numbers, UIDs, flags)
 * from nothing but the untagged EXISTS / EXPUNGE / FETCH it was sent, the parsed replies,
 * and what of a reply must be equal between two servers. Shared by the embedded store's
 * test against Dovecot and the device bridge's.
 */
import { Wire } from './store-imap.js';

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Entry {
  uid: number | null;
  flags: string[] | null;
}

/** One parsed server reply: status, untagged lines with literals inlined, and the model updates. */
export interface Reply {
  status: string;
  code: string;
  untagged: string[];
}

/** Splits a reply into untagged responses (literal bytes kept inline) and the tagged line. */
export function parseReply(text: string, tag: string): Reply {
  const untagged: string[] = [];
  let i = 0;
  let current = '';
  while (i < text.length) {
    const eol = text.indexOf('\r\n', i);
    const line = text.slice(i, eol);
    i = eol + 2;
    const lit = /\{(\d+)\}$/.exec(line);
    if (lit !== null) {
      const n = Number(lit[1]);
      current += `${line}\r\n${text.slice(i, i + n)}`;
      i += n;
      continue;
    }
    current += line;
    if (current.startsWith(`${tag} `)) {
      const m = /^\S+ (OK|NO|BAD) (?:\[([A-Z-]+)[^\]]*\])?/.exec(current);
      return { status: m?.[1] ?? '?', code: m?.[2] ?? '', untagged };
    }
    untagged.push(current);
    current = '';
  }
  throw new Error(`no tagged reply in ${JSON.stringify(text.slice(0, 300))}`);
}

export const normFlags = (list: string): string[] =>
  list
    .split(' ')
    .filter((f) => f !== '' && f !== '\\Recent')
    .sort();

export class Session {
  model: Entry[] = [];
  selected = '';
  readOnly = false;
  private n = 0;
  constructor(
    readonly wire: Wire,
    readonly name: string,
    /** How long one command may take. */
    private readonly timeoutMs = 10_000,
  ) {}

  async run(command: string): Promise<Reply> {
    const tag = `t${++this.n}`;
    const done = new RegExp(`^${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`, 'm');
    let text: string;
    if (command.startsWith('APPEND ')) {
      const [head, body] = command.split('\u0000') as [string, string];
      this.wire.send(`${tag} ${head} {${Buffer.byteLength(body)}+}\r\n${body}\r\n`);
      text = await this.wire.until(done, this.timeoutMs);
    } else if (command === 'IDLE') {
      this.wire.send(`${tag} IDLE\r\n`);
      const start = await this.wire.until(/^\+ [^\r\n]*\r\n/m);
      this.wire.send('DONE\r\n');
      text = start.replace(/^\+ [^\r\n]*\r\n/m, '');
      text += await this.wire.until(done, this.timeoutMs);
    } else {
      this.wire.send(`${tag} ${command}\r\n`);
      text = await this.wire.until(done, this.timeoutMs);
    }
    const reply = parseReply(text, tag);
    if (/^(SELECT|EXAMINE) /.test(command)) this.model = [];
    this.apply(reply);
    // the client's own .SILENT change is not echoed: it no longer knows the exact flags
    if (/^(UID )?STORE \S+ [+-]?FLAGS\.SILENT/.test(command) && reply.status === 'OK')
      for (const e of this.model) e.flags = null;
    if (/^(SELECT|EXAMINE) /.test(command)) {
      if (reply.status === 'OK') {
        this.selected = command.split(' ')[1] as string;
        this.readOnly = command.startsWith('EXAMINE');
      } else this.selected = '';
    }
    return reply;
  }

  private apply(reply: Reply): void {
    for (const line of reply.untagged) {
      let m = /^\* (\d+) EXISTS$/.exec(line);
      if (m !== null) {
        const n = Number(m[1]);
        if (/^\* FLAGS/.test(line)) continue;
        while (this.model.length < n) this.model.push({ uid: null, flags: null });
        if (this.model.length > n) this.model.length = n;
        continue;
      }
      m = /^\* (\d+) EXPUNGE$/.exec(line);
      if (m !== null) {
        this.model.splice(Number(m[1]) - 1, 1);
        continue;
      }
      m = /^\* (\d+) FETCH \(/.exec(line);
      if (m !== null) {
        const e = this.model[Number(m[1]) - 1];
        if (e === undefined) throw new Error(`${this.name}: FETCH for unknown ${m[1]}: ${line}`);
        const uid = /[( ]UID (\d+)/.exec(line);
        if (uid !== null) e.uid = Number(uid[1]);
        const flags = /[( ]FLAGS \(([^)]*)\)/.exec(line);
        if (flags !== null) e.flags = normFlags(flags[1] as string);
      }
    }
  }
}

/** What must be equal between the two servers for one reply. */
export function comparable(command: string, reply: Reply): unknown {
  const verb = command.replace(/^UID /, '').split(' ')[0] as string;
  const out: Record<string, unknown> = { status: reply.status };
  if (verb === 'SEARCH') out.search = reply.untagged.filter((l) => l.startsWith('* SEARCH'));
  if (verb === 'FETCH' && reply.status === 'OK') {
    // the answer proper, not unsolicited FETCH FLAGS of other sessions' changes (Dovecot
    // sends them after, we before): lines carrying an item beyond FLAGS, first per message
    const onlyFlags = /\(UID FLAGS\)$/.test(command);
    const seen = new Set<string>();
    out.fetch = reply.untagged
      .filter((l) => /^\* \d+ FETCH/.test(l))
      .filter((l) => {
        if (onlyFlags) return /[( ]UID \d+/.test(l);
        const items = l.replace(/^\* \d+ FETCH /, '').replace(/FLAGS \([^)]*\)|UID \d+/g, '');
        return /[A-Z]/.test(items);
      })
      .filter((l) => {
        const seq = l.split(' ')[1] as string;
        if (seen.has(seq)) return false;
        seen.add(seq);
        return true;
      })
      // \Recent is not compared; Dovecot writes a default "7bit" in lower case (any case is valid)
      .map((l) => {
        // item order is free (§7.4.2): UID and FLAGS are taken out and compared apart
        const uid = / UID (\d+)|\(UID (\d+)/.exec(l);
        // FLAGS only when asked for: both add it after setting \Seen, Dovecot also when unchanged
        const flags = /FLAGS/.test(command) ? /FLAGS \(([^)]*)\)/.exec(l) : null;
        const rest = l
          .replace(/ ?FLAGS \([^)]*\)/, '')
          .replace(/ ?UID \d+/, '')
          .replace(/\(\s+/g, '(')
          .replace(/"7BIT"/g, '"7bit"');
        return `${rest} uid=${uid?.[1] ?? uid?.[2] ?? ''} flags=${flags === null ? '' : normFlags(flags[1] as string).join(' ')}`;
      })
      .sort();
  }
  return out;
}

export async function openSession(
  port: number,
  name: string,
  auth: string,
  timeoutMs?: number,
): Promise<Session> {
  const w = await Wire.open(port);
  const reply = await w.command('l', `AUTHENTICATE PLAIN ${auth}`);
  if (!/^l OK/m.test(reply)) throw new Error(`${name}: login failed: ${reply}`);
  return new Session(w, name, timeoutMs);
}
