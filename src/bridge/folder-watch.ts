/**
 * Push from the gateway (README.md, "Push"): a few more connections, each keeping one
 * mailbox selected read-only in IDLE (imapflow starts IDLE by itself when a connection
 * is quiet). Any EXISTS, EXPUNGE or FETCH FLAGS one hears syncs that mailbox at once, so
 * a change does not wait for the next poll. The gateway's proxy offers no NOTIFY (RFC
 * 5465; it refuses it, src/imap/refused-commands.ts), and IDLE watches one mailbox per
 * connection, so the watches are bounded (`limit`, 4 by default: the gateway allows 10
 * sessions per user and address, docs/configuration.md) and go to the mailboxes that
 * matter most: INBOX, those local clients have open (latest first), then Sent, Archive,
 * Drafts, Trash, Junk. The rest are polled. A dropped watch connects again after a pause.
 */
import { ImapFlow } from 'imapflow';
import type { SyncLogger } from './sync.js';
import { clientOptions, UPSTREAM_SILENCE_MS, within, type UpstreamSettings } from './upstream.js';

const RECONNECT_MS = 10_000;
export const DEFAULT_WATCHES = 4;

/** One mailbox to watch: its local name (reported on change) and gateway path. */
export interface Watched {
  name: string;
  path: string;
}

class Watch {
  private client: ImapFlow | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly mailbox: Watched,
    private readonly settings: UpstreamSettings,
    private readonly onChange: (name: string) => void,
    private readonly logger: SyncLogger,
  ) {
    void this.open();
  }

  private async open(): Promise<void> {
    this.timer = null;
    if (this.closed) return;
    // This connection sends nothing else: IDLE as soon as the mailbox is open (default 15 s).
    const next = new ImapFlow({
      ...clientOptions(this.settings, { disableAutoIdle: false }),
      autoIdleDelay: 500,
    });
    const changed = (): void => this.onChange(this.mailbox.name);
    next.on('error', () => undefined);
    next.on('exists', changed);
    next.on('expunge', changed);
    next.on('flags', changed);
    next.on('close', () => {
      if (this.client === next) {
        this.client = null;
        // The gateway ended the session (a restart, the device revoked): the sync finds out which.
        if (!this.closed) changed();
      }
      if (!this.closed && this.timer === null)
        this.timer = setTimeout(() => void this.open(), RECONNECT_MS);
    });
    try {
      await next.connect();
      await next.mailboxOpen(this.mailbox.path, { readOnly: true });
      if (this.closed) {
        await next.logout().catch(() => undefined);
        return;
      }
      this.client = next;
    } catch (error) {
      this.logger.warn(
        { mailbox: this.mailbox.name, err: (error as Error).message },
        'bridge cannot watch a mailbox on the gateway',
      );
      next.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const current = this.client;
    this.client = null;
    if (current === null) return;
    // A gateway that does not answer the LOGOUT cannot hold up the stop (upstream.ts).
    await within(
      current.logout().catch(() => undefined),
      UPSTREAM_SILENCE_MS,
    );
    current.close();
  }
}

export class FolderWatches {
  private readonly watches = new Map<string, Watch>();
  private closed = false;

  constructor(
    private readonly settings: UpstreamSettings,
    private readonly onChange: (name: string) => void,
    private readonly logger: SyncLogger,
    private readonly limit = DEFAULT_WATCHES,
  ) {}

  /** The mailboxes being watched, by local name. */
  get names(): string[] {
    return [...this.watches.keys()];
  }

  /**
   * Watches the first `limit` of `wanted` (in priority order): watches no longer wanted
   * are closed, new ones opened, the others kept as they are.
   */
  set(wanted: Watched[]): void {
    if (this.closed) return;
    const chosen = wanted.slice(0, this.limit);
    const keep = new Set(chosen.map((m) => `${m.name}\u0000${m.path}`));
    for (const [name, watch] of this.watches) {
      if (keep.has(`${name}\u0000${watch.mailbox.path}`)) continue;
      this.watches.delete(name);
      void watch.close();
    }
    for (const mailbox of chosen) {
      if (this.watches.has(mailbox.name)) continue;
      this.watches.set(mailbox.name, new Watch(mailbox, this.settings, this.onChange, this.logger));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(all.map((watch) => watch.close()));
  }
}

const SPECIAL_ORDER = ['\\Sent', '\\Archive', '\\Drafts', '\\Trash', '\\Junk'];

/**
 * The watch order: INBOX, the mailboxes local sessions have open (latest first), the
 * special-use ones, then the rest (which only a higher `limit` reaches).
 */
export function watchOrder(
  mailboxes: Array<{
    name: string;
    path: string;
    sessions: number;
    lastOpened: number;
    specialUse?: string;
  }>,
): Watched[] {
  const rank = (m: (typeof mailboxes)[number]): number => {
    if (m.name === 'INBOX') return 0;
    if (m.sessions > 0) return 1;
    const special = m.specialUse === undefined ? -1 : SPECIAL_ORDER.indexOf(m.specialUse);
    return special >= 0 ? 2 + special : 2 + SPECIAL_ORDER.length;
  };
  return [...mailboxes]
    .sort((a, b) => rank(a) - rank(b) || b.lastOpened - a.lastOpened)
    .map((m) => ({ name: m.name, path: m.path }));
}
