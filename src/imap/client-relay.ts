/**
 * The client → upstream half of the relay after login. Bytes pass unchanged; the relay
 * only frames the input into command lines and literals so that it can
 *  - note SELECT/EXAMINE/CLOSE/UNSELECT for the selection tracker, and
 *  - refuse commands that would take the session out of the proxy's hands (COMPRESS
 *    would compress the responses the rewriter must read, STARTTLS/AUTHENTICATE/LOGIN/
 *    UNAUTHENTICATE would re-authenticate upstream, URLFETCH/GENURLAUTH/NOTIFY deliver
 *    bodies or push data around the rewriter). A refused command is replaced by an
 *    unknown one so that upstream answers it with a tagged BAD in the right order.
 *  - in a read-only session (a list archive, archive.ts) also refuse what its policy
 *    refuses (sent as NOOP, whose tagged OK the policy turns into its own NO) and send
 *    SELECT as EXAMINE.
 * Literal contents (APPEND bodies) stream through without being held.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { AppendEncryptor } from './ports.js';
import type { SelectionTracker } from './selection.js';

const LINE_CAP = 64 * 1024;
const MAILBOX_CAP = 1024;
const LITERAL = /\{(\d{1,15})(\+?)\}$/;
export const REFUSED_COMMANDS = new Set([
  'COMPRESS',
  'STARTTLS',
  'AUTHENTICATE',
  'LOGIN',
  'UNAUTHENTICATE',
  'URLFETCH',
  'GENURLAUTH',
  'RESETKEY',
  'NOTIFY',
]);

export interface ClientRelayOptions {
  onRefused?: (command: string) => void;
  /**
   * Encrypts APPENDed messages (Sent, Drafts) before they reach the store. Needs an
   * upstream with LITERAL+: the new, longer literal is sent without a round trip.
   */
  encryptor?: AppendEncryptor;
  /** Writes a continuation request (`+ …`) to the client between upstream responses. */
  inject?: (bytes: Buffer) => void;
  /** Set for a session on a shared mailbox (a list archive): SELECT becomes EXAMINE. */
  readOnly?: ReadOnlyPolicy;
}

/** Which commands a read-only session refuses; the policy answers their tags itself. */
export interface ReadOnlyPolicy {
  /** `name` is the command (after UID); true: refused, and the policy notes the tag. */
  refuses(tag: string, name: string): boolean;
}

export class ClientRelay extends Transform {
  private state: 'line' | 'literal' | 'raw-to-eol' | 'await-continuation' = 'line';
  /** Tag of the command whose synchronizing literal waits for upstream's `+`. */
  private waitingTag = '';
  private held: Buffer[] = [];
  private line: Buffer[] = [];
  private lineLength = 0;
  private literalRemaining = 0;
  /** The current line continues a command after a literal. */
  private continuing = false;
  private tag = '';
  private refusing = false;
  private capture: { tag: string; bytes: Buffer[] } | null = null;

  private append: { parts: Buffer[]; literal: Buffer[] } | null = null;

  constructor(
    private readonly selection: SelectionTracker,
    private readonly options: ClientRelayOptions = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.process(chunk);
    callback();
  }

  /**
   * A status or continuation line from upstream. A synchronizing literal is sent only
   * after `+`; a tagged reply instead (APPEND to a missing mailbox, a refused command)
   * means the client will not send it.
   */
  upstreamLine(line: string): void {
    if (this.state !== 'await-continuation') return;
    if (line.startsWith('+')) this.state = 'literal';
    else if (line.startsWith(`${this.waitingTag} `)) {
      this.state = 'line';
      this.continuing = false;
      this.refusing = false;
      this.capture = null;
    } else return;
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.process(chunk);
  }

  private process(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'await-continuation') {
        this.held.push(chunk.subarray(i));
        return;
      }
      if (this.state === 'literal') {
        const take = Math.min(this.literalRemaining, chunk.length - i);
        const piece = chunk.subarray(i, i + take);
        if (this.capture !== null) this.capture.bytes.push(piece);
        if (this.append !== null) this.append.literal.push(Buffer.from(piece));
        else if (!this.refusing) this.push(piece);
        this.literalRemaining -= take;
        i += take;
        if (this.literalRemaining === 0) {
          this.state = 'line';
          if (this.append !== null) this.finishAppendLiteral();
          if (this.capture !== null) {
            this.selection.commandSent(
              this.capture.tag,
              normalizeMailbox(Buffer.concat(this.capture.bytes).toString('utf8')),
            );
            this.capture = null;
          }
        }
        continue;
      }
      const eol = chunk.indexOf(10, i);
      const end = eol === -1 ? chunk.length : eol + 1;
      const piece = chunk.subarray(i, end);
      i = end;
      if (this.state === 'raw-to-eol') {
        if (!this.refusing) this.push(piece);
        if (eol !== -1) {
          this.state = 'line';
          this.continuing = false;
          this.refusing = false;
        }
        continue;
      }
      this.line.push(piece);
      this.lineLength += piece.length;
      if (eol === -1) {
        if (this.lineLength > LINE_CAP) {
          // An over-long line is forwarded unread; upstream judges it.
          for (const held of this.line) if (!this.refusing) this.push(held);
          this.line = [];
          this.lineLength = 0;
          this.state = 'raw-to-eol';
        }
        continue;
      }
      const line = Buffer.concat(this.line);
      this.line = [];
      this.lineLength = 0;
      this.finishLine(line);
    }
  }

  private finishLine(raw: Buffer): void {
    const text = raw.toString('latin1').replace(/\r?\n$/, '');
    const literal = LITERAL.exec(text);
    if (!this.continuing) {
      this.tag = text.split(' ')[0] ?? '';
      this.inspect(text, raw, literal);
    } else if (this.append !== null) {
      this.append.parts.push(
        literal === null ? raw : raw.subarray(0, text.length - literal[0].length),
      );
    } else if (!this.refusing) this.push(raw);
    if (literal === null) {
      if (this.append !== null) {
        this.push(Buffer.concat(this.append.parts));
        this.append = null;
      }
      this.continuing = false;
      this.refusing = false;
      return;
    }
    this.literalRemaining = Number(literal[1]);
    const synchronizing = literal[2] !== '+';
    this.continuing = true;
    if (this.append !== null && this.literalRemaining > (this.options.encryptor?.maxBytes ?? 0)) {
      // Too large to hold for encryption: refused rather than stored in plaintext.
      this.append = null;
      this.refusing = true;
      this.options.onRefused?.('APPEND');
      this.push(Buffer.from(`${this.tag} X-REFUSED-BY-PROXY\r\n`, 'latin1'));
    }
    if (this.append !== null) {
      // The proxy takes the literal itself (it forwards a different one later).
      if (synchronizing) this.options.inject?.(Buffer.from('+ Ready for literal data\r\n'));
      this.state = this.literalRemaining === 0 ? 'line' : 'literal';
      if (this.literalRemaining === 0) this.finishAppendLiteral();
      return;
    }
    if (synchronizing) {
      // Sent on upstream's `+`; a refused command's sync literal never comes (upstream says BAD).
      this.waitingTag = this.tag;
      this.state = 'await-continuation';
    } else {
      this.state = this.literalRemaining === 0 ? 'line' : 'literal';
    }
    if (this.literalRemaining === 0 && this.capture !== null) {
      this.selection.commandSent(this.capture.tag, '');
      this.capture = null;
    }
  }

  private finishAppendLiteral(): void {
    const append = this.append!;
    const message = Buffer.concat(append.literal);
    append.literal = [];
    const stored = this.options.encryptor!.encrypt(message);
    append.parts.push(Buffer.from(`{${stored.length}+}\r\n`, 'latin1'), stored);
  }

  private inspect(text: string, raw: Buffer, literal: RegExpExecArray | null): void {
    const endsInLiteral = literal !== null;
    const words = text.split(' ');
    const tag = words[0] ?? '';
    let name = (words[1] ?? '').toUpperCase();
    if (name === 'UID') name = (words[2] ?? '').toUpperCase();
    const readOnly = this.options.readOnly;
    // The policy's stand-in is NOOP, not an unknown command: a client may well send many
    // writes in a row, and Dovecot disconnects after 20 invalid commands in a row.
    const standIn = REFUSED_COMMANDS.has(name)
      ? 'X-REFUSED-BY-PROXY'
      : readOnly?.refuses(tag, name) === true
        ? 'NOOP'
        : null;
    if (standIn !== null) {
      this.options.onRefused?.(name);
      this.refusing = true;
      this.push(Buffer.from(`${tag} ${standIn}\r\n`, 'latin1'));
      return;
    }
    if (readOnly !== undefined && (words[1] ?? '').toUpperCase() === 'SELECT') {
      // EXAMINE: the server itself then keeps every flag (no \Seen on FETCH BODY[]).
      raw = Buffer.concat([Buffer.from(`${tag} EXAMINE`, 'latin1'), raw.subarray(tag.length + 7)]);
    }
    if (name === 'SELECT' || name === 'EXAMINE') {
      const rest = text.slice(tag.length + name.length + 2);
      const literal = /^\{(\d{1,4})\+?\}$/.exec(rest);
      if (endsInLiteral && literal !== null && Number(literal[1]) <= MAILBOX_CAP) {
        this.capture = { tag, bytes: [] };
      } else {
        const mailbox = parseMailbox(rest);
        if (mailbox !== null) this.selection.commandSent(tag, normalizeMailbox(mailbox));
      }
    } else if (name === 'APPEND' && literal !== null && this.options.encryptor !== undefined) {
      this.append = { parts: [raw.subarray(0, text.length - literal[0].length)], literal: [] };
      return;
    } else if (name === 'CLOSE' || name === 'UNSELECT') {
      this.selection.commandSent(tag, null);
    } else if (name === 'FETCH' && (words[1] ?? '').toUpperCase() === 'FETCH' && literal === null) {
      this.push(withUid(raw, text));
      return;
    }
    this.push(raw);
  }
}

const PARTIAL_PAST_START = /\]<[1-9][0-9]*\.[0-9]+>/;

/**
 * A partial fetch that starts past byte 0 is patched from the plan of its message,
 * found by UID: a plain FETCH that asks for one without the UID gets `UID` added to its
 * items (RFC 3501 §7.4.2 lets a server send items not asked for; clients ignore them).
 */
function withUid(raw: Buffer, text: string): Buffer {
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
function parseMailbox(rest: string): string | null {
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

function normalizeMailbox(name: string): string {
  return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
}
