import { connect, type Socket } from 'node:net';
import type { MailStore } from '../../src/store/backend.js';
import {
  startImapServer,
  type ImapServerHandle,
  type ImapServerOptions,
} from '../../src/store/imap/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { tempDir, tempDirInMemory } from './tmp.js';

export const MASTER = { user: 'gateway', password: 'master-secret-for-tests' };

/** `\0`-joined SASL PLAIN response, base64. */
export function plain(authzid: string, authcid = MASTER.user, password = MASTER.password): string {
  return Buffer.from(`${authzid}\u0000${authcid}\u0000${password}`).toString('base64');
}

export interface StoreServer {
  store: MailStore;
  server: ImapServerHandle;
  root: string;
  stop(): Promise<void>;
}

/**
 * A real Maildir store in a temp dir with the given users, and our IMAP server on it;
 * `inMemory`: the directory on tmpfs where there is room (tmp.ts tempDirInMemory), for
 * tests that make many fsynced writes and are not about durability.
 */
export async function startStoreServer(
  users: string[],
  options: Partial<ImapServerOptions> = {},
  { inMemory = false }: { inMemory?: boolean } = {},
): Promise<StoreServer> {
  const dir = (inMemory ? tempDirInMemory : tempDir)('store-imap-');
  const store = await createMaildirStore({ root: dir.path });
  for (const u of users) await store.createUser(u);
  const server = await startImapServer({ store, master: MASTER, ...options });
  return {
    store,
    server,
    root: dir.path,
    stop: async () => {
      await server.close();
      await store.close();
      dir.remove();
    },
  };
}

/**
 * How far before the newest bytes `Wire.until` looks for the start of a match. The patterns
 * callers wait for lie within a few response lines; a match that starts further back than
 * this before the bytes that complete it is not seen (as test/helpers/proxy-wire.ts).
 */
const LOOKBACK = 64 * 1024;

/** How many characters before a search's start `^` (with `m`), `\b` and look-behinds see. */
const CONTEXT = 256;

/**
 * A raw IMAP wire client for transcript tests: sends bytes, collects everything the
 * server sends, waits for a pattern. Deliberately dumb: it must not hide server bugs.
 */
export class Wire {
  /**
   * What arrived and was not consumed yet (latin1), in the pieces it came in: appending to
   * one buffer and reading it all on every read is quadratic over a 20 MB reply, so pieces
   * are joined only when a match consumes them or everything is asked for.
   */
  private pieces: string[] = [];
  private pendingLength = 0;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      const piece = chunk.toString('latin1');
      this.pieces.push(piece);
      this.pendingLength += piece.length;
      this.wakeAll();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wakeAll();
    });
    socket.on('error', () => undefined);
  }

  private wakeAll(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  static async open(port: number): Promise<Wire> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const w = new Wire(socket);
    await w.until(/^\* OK .*\r\n/m);
    return w;
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /**
   * Waits until the received text (latin1) matches `re`; returns and consumes it up to the
   * match's end. What arrived before the call is searched once; then each read is searched
   * from `LOOKBACK` characters before it, so waiting costs the same per read however much
   * came before (a sticky pattern, or one anchored with `^` but no `m` flag, is tested on the
   * whole text).
   */
  async until(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    // A global copy: `exec` starts at its `lastIndex`, and the characters before that stay
    // visible to `^`, `\b` and look-behinds, so a search that starts mid-line matches only
    // what the whole text would. Of the same class (as String.prototype.matchAll copies), so
    // a subclass's `exec` still runs: this helper's test counts the characters searched.
    const Same = re.constructor as RegExpConstructor;
    const search = new Same(re.source, `${re.flags.replace('g', '')}g`);
    const fromStartOnly = re.sticky || (re.source.startsWith('^') && !re.multiline);
    /** How much of the pending text was searched without a match. */
    let searched = 0;
    for (;;) {
      const searchFrom = fromStartOnly ? 0 : Math.max(0, searched - LOOKBACK);
      const windowFrom = Math.max(0, searchFrom - CONTEXT);
      const window = this.pendingFrom(windowFrom);
      search.lastIndex = searchFrom - windowFrom;
      const m = search.exec(window);
      if (m !== null) return this.consume(windowFrom + m.index + m[0].length);
      searched = this.pendingLength;
      if (this.closed)
        throw new Error(
          `connection closed while waiting for ${re}; got ${JSON.stringify(this.pending().slice(0, 500))}`,
        );
      if (Date.now() > deadline)
        throw new Error(
          `timeout waiting for ${re}; got ${JSON.stringify(this.pending().slice(0, 500))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The pending text from `offset` on, joining only the pieces that hold it. */
  private pendingFrom(offset: number): string {
    let first = this.pieces.length;
    let firstStart = this.pendingLength;
    while (first > 0 && firstStart > offset) {
      first -= 1;
      firstStart -= this.pieces[first]!.length;
    }
    const parts = this.pieces.slice(first);
    if (parts.length > 0) parts[0] = parts[0]!.slice(offset - firstStart);
    const text = parts.join('');
    if (offset === 0) this.pieces = text === '' ? [] : [text];
    return text;
  }

  /** Removes and returns the pending text up to `end`. */
  private consume(end: number): string {
    const text = this.pendingFrom(0);
    const rest = text.slice(end);
    this.pieces = rest === '' ? [] : [rest];
    this.pendingLength = rest.length;
    return text.slice(0, end);
  }

  /** Sends a tagged command line and returns everything up to and including its tagged reply. */
  async command(tag: string, line: string): Promise<string> {
    this.send(`${tag} ${line}\r\n`);
    return this.until(new RegExp(`^${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`, 'm'));
  }

  /** Whatever arrived and was not consumed yet. */
  pending(): string {
    return this.pendingFrom(0);
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
