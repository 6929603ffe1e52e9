/**
 * Brings the gateway's changes down into the local view (README.md, "Sync"): rounds, each
 * the folder list (sync-folders.ts), then per mailbox what changed (sync-plan.ts: flags
 * and expunges applied, the new UIDs returned), then the new messages fetched, decrypted
 * and cached. When the gateway offers CONDSTORE and neither HIGHESTMODSEQ, UIDNEXT nor the
 * message count moved since the last complete sync, a mailbox costs one SELECT. It runs
 * at start and then every `intervalMs`, and for one mailbox when its watch
 * (folder-watch.ts) hears a change; a failed round is logged and retried at the next one.
 * New messages are fetched one batch per queued gateway operation, so clients served
 * during a long first sync get their turn between batches (README.md, "Serving during the
 * first sync").
 */
import type { DecryptKey } from '../recrypt/index.js';
import type { BridgeCache, CachedMailbox } from './cache.js';
import { LocalMailbox } from './local-mailbox.js';
import { toPlaintext } from './plaintext.js';
import { syncFolderList } from './sync-folders.js';
import { planMailbox, type SyncStats } from './sync-plan.js';
import { Upstream, type FetchedMessage } from './upstream.js';

export interface SyncLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** Told after every batch of new messages fetched into a mailbox (the first sync's progress). */
export type SyncProgress = (progress: { mailbox: string; done: number; total: number }) => void;

/** New messages fetched per queued gateway operation (a client's change waits at most one). */
const FETCH_CHUNK = 50;

export class Sync {
  readonly mailboxes = new Map<string, LocalMailbox>();
  /** What the mailbox syncs cost (sync-plan.ts); tests and benches read them. */
  readonly stats: SyncStats = { incremental: 0, full: 0, flagResponses: 0, uidSearches: 0 };
  /** Told when a session opens or closes a mailbox, and when the folder list changed. */
  onSessionsChanged: () => void = () => undefined;
  private delimiter = '/';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private wantRound = false;
  private readonly wantMailboxes = new Set<string>();
  private folderQueue: Promise<void> = Promise.resolve();

  constructor(
    readonly cache: BridgeCache,
    readonly upstream: Upstream,
    private readonly key: DecryptKey,
    private readonly logger: SyncLogger,
    private readonly progress: SyncProgress = () => undefined,
  ) {
    for (const state of cache.mailboxes) this.mailboxes.set(state.name, this.localOf(state));
  }

  localOf(state: CachedMailbox): LocalMailbox {
    return new LocalMailbox(state, this.cache, this.upstream, () => this.onSessionsChanged());
  }

  /** The gateway's path of a local name. */
  pathOf(name: string): string {
    return this.mailboxes.get(name)?.state.path ?? name.split('/').join(this.delimiter);
  }

  /**
   * One complete round. While one runs, the call returns it and asks for one more after
   * it: a change heard during a round (a watch) may come after that round read the mailbox.
   */
  syncOnce(): Promise<void> {
    this.wantRound = true;
    return this.drive();
  }

  /** Syncs one mailbox soon (its watch heard a change); folded into a running round's follow-up. */
  syncMailboxSoon(name: string): void {
    this.wantMailboxes.add(name);
    this.drive().catch((err: unknown) => this.failed(err));
  }

  private drive(): Promise<void> {
    if (this.running !== null) return this.running;
    this.running = (async () => {
      // A failed step does not end the loop (what was asked after it still runs); the
      // last failed round is the caller's error.
      let roundError: unknown = null;
      while (!this.stopped && (this.wantRound || this.wantMailboxes.size > 0)) {
        if (this.wantRound) {
          this.wantRound = false;
          this.wantMailboxes.clear();
          roundError = await this.round().then(
            () => null,
            (err: unknown) => err,
          );
          continue;
        }
        const names = [...this.wantMailboxes];
        this.wantMailboxes.clear();
        for (const name of names) {
          const mailbox = this.mailboxes.get(name);
          if (mailbox !== undefined && !this.stopped)
            await this.syncMailbox(mailbox).catch((err: unknown) => this.failed(err));
        }
        this.cache.saveNow();
      }
      if (roundError !== null) throw roundError;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private failed(err: unknown): void {
    if (!this.stopped) this.logger.warn({ err: (err as Error).message }, 'bridge sync failed');
  }

  /**
   * Syncs now, then every `intervalMs` until `stop`. Resolves when the first round ended
   * (a failed one is logged: an offline start still serves the cache).
   */
  async start(intervalMs: number): Promise<void> {
    const tick = (): void => {
      if (this.stopped) return;
      this.syncOnce()
        .catch((err: unknown) => this.failed(err))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
        });
    };
    try {
      await this.syncOnce();
    } catch (err) {
      this.failed(err);
    }
    if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /**
   * The gateway refused the device (upstream.ts): no more rounds, and every session, open
   * or to come, is told why and what to do (docs/bridge.md).
   */
  halt(text: string): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const mailbox of this.mailboxes.values()) mailbox.alert(text);
  }

  /** INBOX, then the mailboxes clients have open (latest first), then the rest. */
  byPriority(): LocalMailbox[] {
    const rank = (m: LocalMailbox): number => (m.name === 'INBOX' ? 0 : m.sessions > 0 ? 1 : 2);
    return [...this.mailboxes.values()].sort(
      (a, b) => rank(a) - rank(b) || b.lastOpened - a.lastOpened,
    );
  }

  private async round(): Promise<void> {
    await this.syncFolders();
    // The order is chosen again after each mailbox: one a client opens meanwhile (during
    // a long first sync) comes next.
    const pending = new Set(this.mailboxes.values());
    while (!this.stopped) {
      const next = this.byPriority().find((m) => pending.has(m));
      if (next === undefined) break;
      pending.delete(next);
      // A mailbox no client has open gives way, between two batches, to one a client
      // opened meanwhile; it is finished after it (each gives way once per other mailbox).
      const gaveWay = await this.syncMailbox(
        next,
        () => next.sessions === 0 && [...pending].some((m) => m.sessions > 0),
      );
      if (gaveWay) pending.add(next);
    }
    this.cache.saveNow();
  }

  /**
   * Mailboxes added, renamed or removed on the gateway. One at a time: a client's CREATE
   * or RENAME (local-store.ts) and a round must not both move or add the same mailbox.
   */
  syncFolders(): Promise<void> {
    const run = this.folderQueue.then(() => this.syncFoldersNow());
    this.folderQueue = run.catch(() => undefined);
    return run;
  }

  private async syncFoldersNow(): Promise<void> {
    const { delimiter, changed } = await syncFolderList(this, this.delimiter);
    this.delimiter = delimiter;
    if (changed) this.onSessionsChanged();
  }

  /**
   * One mailbox: UIDs and flags in one gateway operation, then the new messages a batch
   * per operation. The mailbox's CONDSTORE mark moves only once all of them are in, so
   * an interrupted sync (a kill, a new UIDVALIDITY, a stop) is finished by the next round.
   * Returns true when it stopped early because `giveWay` said so between two batches.
   */
  async syncMailbox(mailbox: LocalMailbox, giveWay?: () => boolean): Promise<boolean> {
    const state = mailbox.state;
    const plan = await this.upstream.withMailbox(
      state.path,
      async (client, selected) => {
        if (selected.uidValidity !== state.uidValidity) {
          // New UIDVALIDITY on the gateway: the old UIDs mean nothing any more.
          if (state.uidValidity !== 0 || state.messages.length > 0) {
            mailbox.reset(selected.uidValidity);
            this.cache.removeMailboxFiles(state.name);
          } else state.uidValidity = selected.uidValidity;
        }
        const unchanged =
          state.upstreamModseq !== undefined &&
          selected.highestModseq === state.upstreamModseq &&
          selected.uidNext <= state.uidNext &&
          selected.exists === state.messages.length;
        if (unchanged) return null;
        const fresh = await planMailbox(mailbox, client, selected, this.stats);
        return { selected, fresh };
        // Selected again even when it is selected already: imapflow keeps the last SELECT's
        // HIGHESTMODSEQ, and a change since then would look like none.
      },
      true,
    );
    if (plan === null) return false;
    const { selected, fresh } = plan;
    if (fresh.length > 0)
      this.logger.info({ mailbox: state.name, messages: fresh.length }, 'bridge fetching');
    let done = 0;
    for (let i = 0; i < fresh.length; i += FETCH_CHUNK) {
      const chunk = fresh.slice(i, i + FETCH_CHUNK);
      const fetched = await this.upstream.withMailbox(state.path, async (client, now) => {
        // Between two chunks the mailbox may have changed identity or been deleted.
        if (now.uidValidity !== selected.uidValidity || this.mailboxes.get(state.name) !== mailbox)
          return -1;
        let count = 0;
        for await (const message of Upstream.messagesOf(client, chunk)) {
          this.addFetched(mailbox, message);
          count += 1;
        }
        return count;
      });
      if (fetched < 0 || this.stopped) return false;
      done += chunk.length;
      this.progress({ mailbox: state.name, done, total: fresh.length });
      this.cache.saveSoon();
      if (done < fresh.length && giveWay?.() === true) return true;
    }
    state.uidNext = Math.max(state.uidNext, selected.uidNext);
    if (selected.highestModseq !== undefined) state.upstreamModseq = selected.highestModseq;
    this.cache.saveSoon();
    return false;
  }

  private addFetched(mailbox: LocalMailbox, fetched: FetchedMessage): void {
    const plaintext = toPlaintext(fetched.source, this.key);
    if (plaintext.kind === 'placeholder')
      this.logger.warn(
        { mailbox: mailbox.name, uid: fetched.uid, reason: plaintext.reason },
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
  }
}
