/**
 * The client → upstream half of the relay after login. The relay frames the input with
 * the shared framer (src/imap-wire/framer.ts) into command lines and literals so that it
 * can
 *  - note SELECT/EXAMINE/CLOSE/UNSELECT for the selection tracker,
 *  - refuse what refused-commands.ts refuses (a command replaced by a stand-in, so that
 *    upstream answers its tag in the right order), and in a read-only session (a list
 *    archive, archive.ts) send SELECT as EXAMINE,
 *  - encrypt APPENDed messages (append-messages.ts).
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
import { AppendMessages } from './append-messages.js';
import { beforeLiteral, normalizeMailbox, parseMailbox, withUid } from './command-line.js';
import type { AppendEncryptor } from './ports.js';
import { standInFor, type ReadOnlyPolicy } from './refused-commands.js';
import type { SelectionTracker } from './selection.js';

export { REFUSED_COMMANDS, type ReadOnlyPolicy } from './refused-commands.js';

/**
 * Longest command line: under the embedded store's 64 KiB (src/store/imap/server.ts) by
 * enough that a line the relay rewrites (a longer APPEND size) never exceeds it there.
 */
export const RELAY_LINE_CAP = 64 * 1024 - 32;
/** RFC 3501's number is 32-bit; upstream judges any literal below that. */
const RELAY_LITERAL_CAP = 0xffffffff;
const MAILBOX_CAP = 1024;
const TAGGED = /^(\S+) (?:OK|NO|BAD)\b/i;

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
  /** Literal data the relay forwards (after upstream's `+`). */
  private streaming = false;
  private idleLine = false;
  private fatal = false;
  /** The next line sent upstream starts a command. */
  private reportNext = false;
  private capture: { tag: string; bytes: Buffer[] } | null = null;
  /** Null: APPENDs go upstream as sent. */
  private readonly appends: AppendMessages | null;

  constructor(
    private readonly selection: SelectionTracker,
    private readonly options: ClientRelayOptions = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.appends = options.encryptor === undefined ? null : new AppendMessages(options.encryptor);
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
      this.appends?.release();
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
    this.appends?.end();
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
    const appending = this.appends?.active === true;
    if (appending) this.appends!.add(data);
    else if (!this.refusing && this.streaming) this.push(data);
    if (this.capture !== null) this.capture.bytes.push(data);
    if (!last) return;
    this.streaming = false;
    if (appending) this.sendAppendLiteral();
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
    } else if (this.appends?.active === true) {
      if (literal === null) {
        this.pushLine(line);
        this.appends.end();
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
    const standIn = standInFor(text, tag, name, readOnly);
    if (standIn !== null) {
      this.options.onRefused?.(name);
      this.refusing = true;
      this.sent(tag);
      this.pushLine(Buffer.from(`${tag} ${standIn}`, 'latin1'));
      this.skip(literal);
      return null;
    }
    if (name === 'APPEND' && literal !== null && this.appends !== null) {
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
    const appends = this.appends!;
    const first = !appends.active;
    const refused = appends.start(line, literal.size);
    if (refused === null) {
      if (first) this.sent(this.tag);
      if (literal.sync) this.options.inject?.(Buffer.from('+ Ready for literal data\r\n'));
      this.framer.accept();
      if (literal.size === 0) this.sendAppendLiteral();
      return;
    }
    this.options.onRefused?.('APPEND');
    if (!first) {
      // Earlier messages of this MULTIAPPEND are upstream already: no clean way back.
      return this.fail(
        refused === 'too-big'
          ? 'APPEND message too large to encrypt'
          : 'Too many APPENDs in progress',
      );
    }
    const reply =
      refused === 'too-big'
        ? 'NO [TOOBIG] Message too large to encrypt'
        : 'NO [LIMIT] Too many APPENDs in progress, try again';
    this.options.inject?.(Buffer.from(`${this.tag} ${reply}\r\n`, 'latin1'));
    if (literal.sync) this.framer.refuse();
    else {
      this.framer.accept();
      this.refusing = true;
    }
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.appends?.release();
    callback(error);
  }

  private sendAppendLiteral(): void {
    const { line, data } = this.appends!.encrypt();
    this.pushLine(line);
    this.awaiting = { kind: 'literal', tag: this.tag, clientSync: false, data };
  }
}
