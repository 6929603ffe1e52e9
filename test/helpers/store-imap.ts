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
 * A raw IMAP wire client for transcript tests: sends bytes, collects everything the
 * server sends, waits for a pattern. Deliberately dumb: it must not hide server bugs.
 */
export class Wire {
  private data = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
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

  /** Waits until the received text (latin1) matches `re`; returns and consumes it up to the match's end. */
  async until(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.data.toString('latin1');
      const m = re.exec(text);
      if (m !== null) {
        const end = m.index + m[0].length;
        this.data = this.data.subarray(end);
        return text.slice(0, end);
      }
      if (this.closed)
        throw new Error(
          `connection closed while waiting for ${re}; got ${JSON.stringify(text.slice(0, 500))}`,
        );
      if (Date.now() > deadline)
        throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(text.slice(0, 500))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a tagged command line and returns everything up to and including its tagged reply. */
  async command(tag: string, line: string): Promise<string> {
    this.send(`${tag} ${line}\r\n`);
    return this.until(new RegExp(`^${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`, 'm'));
  }

  /** Whatever arrived and was not consumed yet. */
  pending(): string {
    return this.data.toString('latin1');
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
