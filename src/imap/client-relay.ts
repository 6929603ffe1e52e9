/**
 * The client → upstream half of the relay after login. The relay frames the input with
 * the shared framer (src/imap-wire/framer.ts) into command lines and literals so that it
 * can
 *  - note SELECT/EXAMINE/CLOSE/UNSELECT for the selection tracker, and
 *  - refuse commands that would take the session out of the proxy's hands (COMPRESS
 *    would compress the responses the rewriter must read, STARTTLS/AUTHENTICATE/LOGIN/
 *    UNAUTHENTICATE would re-authenticate upstream, URLFETCH/GENURLAUTH/NOTIFY deliver
 *    bodies or push data around the rewriter). A refused command is replaced by an
 *    unknown one so that upstream answers it with a tagged BAD in the right order.
 *  - in a read-only session (a list archive, archive.ts) also refuse what its policy
 *    refuses (sent as NOOP, whose tagged OK the policy turns into its own NO) and send
 *    SELECT as EXAMINE.
 *
 * Upstream must never read as a command a byte the relay passed as literal data, and
 * upstream parsers differ on what a literal is (Dovecot reads `A NOOP {5+}` as a whole
 * command, `A IDLE {5+}` as IDLE). So every literal goes upstream *synchronizing*, and
 * its data follows only upstream's own `+`; a tagged reply instead means upstream took
 * no literal, and the client's data (if it already sent it, LITERAL+) and the rest of
 * that command are dropped. The `+` the client did not ask for is hidden from it.
 * IDLE goes upstream only as `tag IDLE`, and its one DONE line only after upstream's `+`.
 * Over-long lines are answered BAD (or end the session when the stream cannot be
 * resynchronised) and never forwarded. See docs/threat-model.md, "Limits".
 * Literal contents (other than APPEND bodies, which are encrypted) stream through.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { CommandFramer, type LiteralAnnouncement } from '../imap-wire/framer.js';
import type { AppendEncryptor } from './ports.js';
import type { SelectionTracker } from './selection.js';

/**
 * Longest command line: under the embedded store's 64 KiB (src/store/imap/server.ts) by
 * enough that a line the relay rewrites (a longer APPEND size) never exceeds it there.
 */
export const RELAY_LINE_CAP = 64 * 1024 - 32;
/** RFC 3501's number is 32-bit; upstream judges any literal below that. */
const RELAY_LITERAL_CAP = 0xffffffff;
const MAILBOX_CAP = 1024;
const TAGGED = /^(\S+) (?:OK|NO|BAD)\b/i;
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
   * Encrypts APPENDed messages (Sent, Drafts) before they reach the store. A message
   * over its `maxBytes` gets `NO [TOOBIG]` before its literal is read.
   */
  encryptor?: AppendEncryptor;
  /** Writes the proxy's own response (`+ …`, a BAD) to the client between upstream responses. */
  inject?: (bytes: Buffer) => void;
  /** Set for a session on a shared mailbox (a list archive): SELECT becomes EXAMINE. */
  readOnly?: ReadOnlyPolicy;
  /** The input cannot be resynchronised: the session must end with this BYE text. */
  onFatal?: (text: string) => void;
  /** Sees the first line (without CRLF) of every command sent upstream (tests compare framings). */
  onCommand?: (line: Buffer) => void;
}

/** Which commands a read-only session refuses; the policy answers their tags itself. */
export interface ReadOnlyPolicy {
  /** `name` is the command (after UID); true: refused, and the policy notes the tag. */
  refuses(tag: string, name: string): boolean;
}

type Awaiting =
  /** A literal announced upstream; `data`: the encrypted APPEND message to send on `+`. */
  | { kind: 'literal'; tag: string; clientSync: boolean; data: Buffer | null }
  | { kind: 'idle'; tag: string };

export class ClientRelay extends Transform {
  private readonly framer = new CommandFramer({
    maxLineLength: RELAY_LINE_CAP,
    maxLiteralSize: RELAY_LITERAL_CAP,
  });
  private awaiting: Awaiting | null = null;
  private pendingCallback: TransformCallback | null = null;
  /** Commands sent upstream and not yet answered, by tag. */
  private readonly outstanding = new Map<string, number>();
  /** The next `+` from upstream answers a literal the client sent without asking: hidden. */
  private hideLine = false;
  private tag = '';
  /** The rest of the current command (lines and literal data) is dropped. */
  private refusing = false;
  /** Bytes of APPEND literals this session holds under the encryptor's budget. */
  private appendReserved = 0;
  /** Literal data the relay forwards (after upstream's `+`). */
  private streaming = false;
  private idleLine = false;
  private fatal = false;
  /** The next line sent upstream starts a command. */
  private reportNext = false;
  private capture: { tag: string; bytes: Buffer[] } | null = null;
  private append: { head: Buffer; literal: Buffer[] } | null = null;

  constructor(
    private readonly selection: SelectionTracker,
    private readonly options: ClientRelayOptions = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.framer.push(chunk);
    this.pump();
    // While upstream decides on a literal, the client's bytes wait in the socket.
    if (this.awaiting === null) callback();
    else this.pendingCallback = callback;
  }

  /**
   * A status or continuation line from upstream (without CRLF). Settles what the relay
   * waits for: `+` (the literal is read, IDLE has begun) or that command's tagged reply.
   */
  upstreamLine(line: string): void {
    const tagged = TAGGED.exec(line)?.[1];
    let count = 0;
    if (tagged !== undefined) {
      count = this.outstanding.get(tagged) ?? 0;
      if (count > 1) this.outstanding.set(tagged, count - 1);
      else this.outstanding.delete(tagged);
    }
    const awaiting = this.awaiting;
    if (awaiting === null) return;
    // An encrypted APPEND literal leaves the relay now (sent, or dropped): its memory is free.
    if (
      awaiting.kind === 'literal' &&
      awaiting.data !== null &&
      (line.startsWith('+') || tagged === awaiting.tag)
    )
      this.releaseAppend();
    if (line.startsWith('+')) {
      this.awaiting = null;
      if (awaiting.kind === 'idle') {
        this.framer.expectLine();
        this.idleLine = true;
      } else {
        if (!awaiting.clientSync || awaiting.data !== null) this.hideLine = true;
        this.continueLiteral(awaiting.data);
      }
    } else if (tagged === awaiting.tag && count <= 1) {
      // Answered without a `+`: upstream took no literal (or did not start IDLE).
      this.awaiting = null;
      if (awaiting.kind === 'literal')
        this.dropLiteral(awaiting.clientSync, awaiting.data !== null);
    } else return;
    this.pump();
    if (this.awaiting === null && this.pendingCallback !== null) {
      const callback = this.pendingCallback;
      this.pendingCallback = null;
      callback();
    }
  }

  /** True once for the `+` line `upstreamLine` just consumed for the relay itself. */
  takeHiddenLine(): boolean {
    const hide = this.hideLine;
    this.hideLine = false;
    return hide;
  }

  private continueLiteral(encrypted: Buffer | null): void {
    if (encrypted !== null) {
      this.push(encrypted);
      return;
    }
    this.framer.accept();
    this.streaming = true;
  }

  private dropLiteral(clientSync: boolean, encrypted: boolean): void {
    this.capture = null;
    this.append = null;
    if (encrypted) {
      // The client's message is already read; the rest of the command is dropped.
      this.refusing = true;
      return;
    }
    if (clientSync) this.framer.refuse();
    else {
      this.framer.accept();
      this.refusing = true;
    }
  }

  private pump(): void {
    while (this.awaiting === null && !this.fatal) {
      const event = this.framer.next();
      if (event === null) return;
      switch (event.type) {
        case 'literal':
          this.literalData(event.data, event.last);
          break;
        case 'raw-line':
          this.idleLine = false;
          this.pushLine(event.line);
          break;
        case 'line':
          this.commandLine(event.line, event.first, event.tag, event.literal);
          break;
        case 'too-long':
          this.tooLong(event.tag, event.resync);
          break;
        case 'literal-too-large':
          this.fail('Literal too large');
          break;
      }
    }
  }

  private fail(text: string): void {
    this.fatal = true;
    this.options.onFatal?.(text);
  }

  private tooLong(tag: string | null, resync: boolean): void {
    if (this.idleLine) {
      // Upstream is in IDLE and reads one line: any line but DONE ends it with a BAD.
      this.idleLine = false;
      this.push(Buffer.from('X-LINE-TOO-LONG\r\n', 'latin1'));
      return;
    }
    if (!resync) return this.fail('Command line too long');
    this.refusing = false;
    this.options.onRefused?.('line-too-long');
    this.options.inject?.(Buffer.from(`${tag ?? '*'} BAD [TOOBIG] Command line too long\r\n`));
  }

  private literalData(data: Buffer, last: boolean): void {
    if (this.append !== null) this.append.literal.push(data);
    else if (!this.refusing && this.streaming) this.push(data);
    if (this.capture !== null) this.capture.bytes.push(data);
    if (!last) return;
    this.streaming = false;
    if (this.append !== null) this.sendAppendLiteral();
    if (this.capture !== null) {
      const { tag, bytes } = this.capture;
      this.capture = null;
      this.selection.commandSent(tag, normalizeMailbox(Buffer.concat(bytes).toString('utf8')));
    }
  }

  private commandLine(
    line: Buffer,
    first: boolean,
    tag: string | null,
    literal: LiteralAnnouncement | null,
  ): void {
    if (first) {
      this.refusing = false;
      this.reportNext = true;
      this.tag = tag ?? '';
      if (tag === null) {
        // No valid tag: nothing a reply could be matched to (an untagged `* OK` would
        // pass for one), so it never goes upstream. RFC 3501 §7.1.3: untagged BAD.
        this.refusing = true;
        this.reportNext = false;
        this.options.inject?.(Buffer.from('* BAD Missing or invalid tag\r\n'));
        return this.skip(literal);
      }
      const upstream = this.inspect(line, literal);
      if (upstream === null) return;
      line = upstream;
    } else if (this.append !== null) {
      if (literal === null) {
        this.pushLine(line);
        this.append = null;
        return;
      }
      return this.startAppendLiteral(line, literal);
    } else if (this.refusing) return this.skip(literal);
    if (literal === null) return this.pushLine(line);
    // Every literal goes upstream synchronizing: upstream's `+` says it reads one.
    this.pushLine(Buffer.concat([beforeLiteral(line), Buffer.from(`{${literal.size}}`)]));
    this.awaiting = { kind: 'literal', tag: this.tag, clientSync: literal.sync, data: null };
  }

  /** Drops the rest of a refused command: its literal, if the client sends it. */
  private skip(literal: LiteralAnnouncement | null): void {
    if (literal === null) this.refusing = false;
    else if (literal.sync) this.framer.refuse();
    else this.framer.accept();
  }

  /** The first line of a command: what goes upstream instead, or null once handled. */
  private inspect(raw: Buffer, literal: LiteralAnnouncement | null): Buffer | null {
    const text = raw.toString('latin1');
    const words = text.split(' ');
    const tag = words[0] ?? '';
    let name = (words[1] ?? '').toUpperCase();
    if (name === 'UID') name = (words[2] ?? '').toUpperCase();
    const readOnly = this.options.readOnly;
    // IDLE with anything after it is not IDLE to every server (Dovecot ignores the rest).
    const badIdle = name === 'IDLE' && text.toUpperCase() !== `${tag.toUpperCase()} IDLE`;
    // The policy's stand-in is NOOP, not an unknown command: a client may well send many
    // writes in a row, and Dovecot disconnects after 20 invalid commands in a row.
    const standIn =
      REFUSED_COMMANDS.has(name) || badIdle
        ? 'X-REFUSED-BY-PROXY'
        : readOnly?.refuses(tag, name) === true
          ? 'NOOP'
          : null;
    if (standIn !== null) {
      this.options.onRefused?.(name);
      this.refusing = true;
      this.sent(tag);
      this.pushLine(Buffer.from(`${tag} ${standIn}`, 'latin1'));
      this.skip(literal);
      return null;
    }
    if (name === 'APPEND' && literal !== null && this.options.encryptor !== undefined) {
      this.startAppendLiteral(raw, literal);
      return null;
    }
    this.sent(tag);
    if (name === 'IDLE') {
      this.pushLine(raw);
      this.awaiting = { kind: 'idle', tag };
      return null;
    }
    if (readOnly !== undefined && (words[1] ?? '').toUpperCase() === 'SELECT') {
      // EXAMINE: the server itself then keeps every flag (no \Seen on FETCH BODY[]).
      raw = Buffer.concat([Buffer.from(`${tag} EXAMINE`, 'latin1'), raw.subarray(tag.length + 7)]);
    }
    if (name === 'SELECT' || name === 'EXAMINE') {
      const rest = text.slice(tag.length + name.length + 2);
      const mailboxLiteral = /^\{(\d{1,4})\+?\}$/.exec(rest);
      if (literal !== null && mailboxLiteral !== null && Number(mailboxLiteral[1]) <= MAILBOX_CAP) {
        this.capture = { tag, bytes: [] };
      } else {
        const mailbox = parseMailbox(rest);
        if (mailbox !== null) this.selection.commandSent(tag, normalizeMailbox(mailbox));
        else if (literal !== null && literal.size === 0) this.selection.commandSent(tag, '');
      }
    } else if (name === 'CLOSE' || name === 'UNSELECT') {
      this.selection.commandSent(tag, null);
    } else if (name === 'FETCH' && (words[1] ?? '').toUpperCase() === 'FETCH' && literal === null) {
      return withUid(raw, text);
    }
    return raw;
  }

  private sent(tag: string): void {
    this.outstanding.set(tag, (this.outstanding.get(tag) ?? 0) + 1);
  }

  private pushLine(line: Buffer): void {
    if (this.reportNext) {
      this.reportNext = false;
      this.options.onCommand?.(line);
    }
    this.push(Buffer.concat([line, Buffer.from('\r\n')]));
  }

  /** An APPEND message: read whole (bounded by the encryptor) before anything goes upstream. */
  private startAppendLiteral(line: Buffer, literal: LiteralAnnouncement): void {
    const encryptor = this.options.encryptor!;
    const first = this.append === null;
    if (literal.size > encryptor.maxBytes) {
      this.options.onRefused?.('APPEND');
      this.append = null;
      if (!first) {
        // Earlier messages of this MULTIAPPEND are upstream already: no clean way back.
        return this.fail('APPEND message too large to encrypt');
      }
      this.options.inject?.(
        Buffer.from(`${this.tag} NO [TOOBIG] Message too large to encrypt\r\n`, 'latin1'),
      );
      if (literal.sync) this.framer.refuse();
      else {
        this.framer.accept();
        this.refusing = true;
      }
      return;
    }
    if (encryptor.reserve !== undefined && !encryptor.reserve(literal.size)) {
      this.options.onRefused?.('APPEND');
      this.append = null;
      if (!first) return this.fail('Too many APPENDs in progress');
      this.options.inject?.(
        Buffer.from(`${this.tag} NO [LIMIT] Too many APPENDs in progress, try again\r\n`, 'latin1'),
      );
      if (literal.sync) this.framer.refuse();
      else {
        this.framer.accept();
        this.refusing = true;
      }
      return;
    }
    this.appendReserved += literal.size;
    if (first) this.sent(this.tag);
    this.append = { head: beforeLiteral(line), literal: [] };
    if (literal.sync) this.options.inject?.(Buffer.from('+ Ready for literal data\r\n'));
    this.framer.accept();
    if (literal.size === 0) this.sendAppendLiteral();
  }

  private releaseAppend(): void {
    if (this.appendReserved > 0) this.options.encryptor?.release?.(this.appendReserved);
    this.appendReserved = 0;
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.releaseAppend();
    callback(error);
  }

  private sendAppendLiteral(): void {
    const append = this.append!;
    const stored = this.options.encryptor!.encrypt(Buffer.concat(append.literal));
    append.literal = [];
    this.pushLine(Buffer.concat([append.head, Buffer.from(`{${stored.length}}`, 'latin1')]));
    this.awaiting = { kind: 'literal', tag: this.tag, clientSync: false, data: stored };
  }
}

/** The line without its literal announcement `{N}` / `{N+}`. */
function beforeLiteral(line: Buffer): Buffer {
  return line.subarray(0, line.lastIndexOf(0x7b));
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
