/**
 * Brings the gateway's changes down into the local view (README.md, "Sync"): the folder
 * list, then per mailbox the UIDs and flags, which decide what is new (fetched, decrypted,
 * cached), what is gone (expunged locally) and whose flags changed. When the gateway
 * offers CONDSTORE and neither HIGHESTMODSEQ, UIDNEXT nor the message count moved since the
 * last complete sync, a mailbox costs one SELECT. It runs at start and then every
 * `intervalMs`; a failed round is logged and retried at the next one.
 */
import type { DecryptKey } from '../recrypt/index.js';
import type { SpecialUse } from '../store/backend.js';
import type { BridgeCache, CachedMailbox } from './cache.js';
import { LocalMailbox } from './local-mailbox.js';
import { toPlaintext } from './plaintext.js';
import { Upstream } from './upstream.js';

export interface SyncLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** Told after every batch of new messages fetched into a mailbox (the first sync's progress). */
export type SyncProgress = (progress: { mailbox: string; done: number; total: number }) => void;

const PROGRESS_EVERY = 50;

const SPECIAL_USES = new Set(['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive']);

export class Sync {
  readonly mailboxes = new Map<string, LocalMailbox>();
  private delimiter = '/';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private again = false;

  constructor(
    private readonly cache: BridgeCache,
    private readonly upstream: Upstream,
    private readonly key: DecryptKey,
    private readonly logger: SyncLogger,
    private readonly progress: SyncProgress = () => undefined,
  ) {
    for (const state of cache.mailboxes) this.mailboxes.set(state.name, this.localOf(state));
  }

  private localOf(state: CachedMailbox): LocalMailbox {
    return new LocalMailbox(state, this.cache, this.upstream);
  }

  /** The gateway's path of a local name. */
  pathOf(name: string): string {
    return this.mailboxes.get(name)?.state.path ?? name.split('/').join(this.delimiter);
  }

  /**
   * One complete round. While one runs, the call returns it and asks for one more after
   * it: a change heard during a round (the INBOX watch) may come after that round read
   * the mailbox.
   */
  syncOnce(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = this.round().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        this.syncOnce().catch((err: unknown) =>
          this.logger.warn({ err: (err as Error).message }, 'bridge sync failed'),
        );
      }
    });
    return this.running;
  }

  /** Syncs now, then every `intervalMs` until `stop`. */
  async start(intervalMs: number): Promise<void> {
    await this.syncOnce();
    const tick = (): void => {
      if (this.stopped) return;
      this.syncOnce()
        .catch((err: unknown) =>
          this.logger.warn({ err: (err as Error).message }, 'bridge sync failed'),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private async round(): Promise<void> {
    await this.syncFolders();
    for (const mailbox of [...this.mailboxes.values()]) await this.syncMailbox(mailbox);
    this.cache.saveNow();
  }

  /** Mailboxes added or removed on the gateway. */
  async syncFolders(): Promise<void> {
    const listed = (await this.upstream.listMailboxes()).filter((m) => !m.flags.has('\\Noselect'));
    const seen = new Set<string>();
    for (const entry of listed) {
      this.delimiter = entry.delimiter || '/';
      const name =
        entry.path.toUpperCase() === 'INBOX' ? 'INBOX' : entry.path.split(this.delimiter).join('/');
      seen.add(name);
      const known = this.mailboxes.get(name);
      if (known !== undefined) {
        known.state.subscribed = entry.subscribed;
        continue;
      }
      const state: CachedMailbox = {
        name,
        path: entry.path,
        ...(entry.specialUse !== undefined && SPECIAL_USES.has(entry.specialUse)
          ? { specialUse: entry.specialUse as SpecialUse }
          : {}),
        subscribed: entry.subscribed,
        uidValidity: 0,
        uidNext: 1,
        highestModseq: 1,
        messages: [],
      };
      this.cache.mailboxes.push(state);
      this.mailboxes.set(name, this.localOf(state));
    }
    for (const [name, mailbox] of this.mailboxes) {
      if (seen.has(name)) continue;
      mailbox.remove(
        mailbox.state.messages.map((m) => m.uid),
        null,
      );
      this.cache.removeMailboxFiles(name);
      this.mailboxes.delete(name);
      this.cache.mailboxes.splice(this.cache.mailboxes.indexOf(mailbox.state), 1);
    }
    this.cache.saveSoon();
  }

  async syncMailbox(mailbox: LocalMailbox): Promise<void> {
    const state = mailbox.state;
    await this.upstream.withMailbox(state.path, async (client, selected) => {
      if (selected.uidValidity !== state.uidValidity) {
        // New UIDVALIDITY on the gateway: the old UIDs mean nothing any more.
        if (state.messages.length > 0)
          mailbox.remove(
            state.messages.map((m) => m.uid),
            null,
          );
        this.cache.removeMailboxFiles(state.name);
        state.uidValidity = selected.uidValidity;
        state.uidNext = 1;
        delete state.upstreamModseq;
      }
      const unchanged =
        state.upstreamModseq !== undefined &&
        selected.highestModseq === state.upstreamModseq &&
        selected.uidNext <= state.uidNext &&
        selected.exists === state.messages.length;
      if (unchanged) return;
      const upstreamFlags =
        selected.exists === 0 ? new Map<number, string[]>() : await Upstream.flagsOf(client);
      const gone = state.messages.filter((m) => !upstreamFlags.has(m.uid)).map((m) => m.uid);
      if (gone.length > 0) mailbox.remove(gone, null);
      for (const message of [...state.messages]) {
        const flags = upstreamFlags.get(message.uid);
        if (flags !== undefined) mailbox.updateFlags(message, flags, null);
      }
      const fresh = [...upstreamFlags.keys()]
        .filter((uid) => mailbox.message(uid) === undefined)
        .sort((a, b) => a - b);
      if (fresh.length > 0)
        this.logger.info({ mailbox: state.name, messages: fresh.length }, 'bridge fetching');
      let done = 0;
      for await (const fetched of Upstream.messagesOf(client, fresh)) {
        const plaintext = toPlaintext(fetched.source, this.key);
        if (plaintext.kind === 'placeholder')
          this.logger.warn(
            { mailbox: state.name, uid: fetched.uid, reason: plaintext.reason },
            'bridge cannot decrypt a message',
          );
        mailbox.add(
          {
            uid: fetched.uid,
            flags: [...fetched.flags].sort(),
            internalDate: fetched.internalDate.getTime(),
            size: plaintext.bytes.length,
            modseq: 0,
            kind: plaintext.kind,
          },
          plaintext.bytes,
        );
        done += 1;
        if (done % PROGRESS_EVERY === 0 || done === fresh.length)
          this.progress({ mailbox: state.name, done, total: fresh.length });
      }
      state.uidNext = Math.max(state.uidNext, selected.uidNext);
      if (selected.highestModseq !== undefined) state.upstreamModseq = selected.highestModseq;
      this.cache.saveSoon();
    });
  }
}
