import type { MailboxHandle, MailStore, UserStore } from '../backend.js';
import type { RenderCache } from './render/cache.js';
import type { StoreImapMetrics } from './metrics.js';
import type { CommandInput } from './input.js';
import type { Output } from './output.js';
import { SessionTracker } from './tracker.js';

export type SessionState = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SessionConfig {
  store: MailStore;
  master: { user: string; password: string };
  allowUserLogin: boolean;
  tlsAvailable: boolean;
  logger: Logger;
  /** Shared by all sessions of the server. */
  cache: RenderCache;
  /** Counts commands by name and result; optional so the server runs without it. */
  metrics?: StoreImapMetrics;
}

export interface Selected {
  handle: MailboxHandle;
  tracker: SessionTracker;
  readOnly: boolean;
}

/**
 * Everything one connection's handlers share: state (RFC 3501 §3), the user's store,
 * the selected mailbox with its sequence tracker, and the wire.
 */
export class Session {
  state: SessionState = 'not-authenticated';
  user: UserStore | null = null;
  selected: Selected | null = null;
  secure: boolean;
  idling = false;

  constructor(
    readonly config: SessionConfig,
    readonly out: Output,
    readonly input: CommandInput,
    secure: boolean,
    readonly startTls: () => Promise<void>,
    readonly id: number,
  ) {
    this.secure = secure;
  }

  capabilities(): string[] {
    const caps = [
      'IMAP4rev1',
      'LITERAL+',
      'SASL-IR',
      'ID',
      'ENABLE',
      'IDLE',
      'NAMESPACE',
      'UIDPLUS',
      'MOVE',
      'UNSELECT',
      'SPECIAL-USE',
      'CHILDREN',
      'ESEARCH',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'SORT',
      'THREAD=ORDEREDSUBJECT',
      'THREAD=REFERENCES',
      'MULTIAPPEND',
    ];
    if (this.state === 'not-authenticated') {
      if (this.config.tlsAvailable && !this.secure) caps.push('STARTTLS');
      caps.push('AUTH=PLAIN');
    }
    return caps;
  }

  /** Opens `handle` as the selected mailbox, replacing (and closing) any previous one. */
  async select(handle: MailboxHandle): Promise<Selected> {
    await this.unselect();
    const tracker = new SessionTracker(handle.records().map((r) => r.uid));
    const selected: Selected = { handle, tracker, readOnly: handle.readOnly };
    handle.onEvent((event) => {
      tracker.push(event);
      if (this.idling) void this.flushUpdates(true).catch(() => undefined);
    });
    this.selected = selected;
    this.state = 'selected';
    return selected;
  }

  async unselect(): Promise<void> {
    const sel = this.selected;
    this.selected = null;
    if (this.state === 'selected') this.state = 'authenticated';
    if (sel !== null) await sel.handle.close();
  }

  /** Sends pending untagged updates for the selected mailbox. */
  async flushUpdates(allowExpunge: boolean): Promise<void> {
    const sel = this.selected;
    if (sel === null || !sel.tracker.hasPending) return;
    for (const line of sel.tracker.drain(allowExpunge, (uid) => sel.handle.isRecent(uid), false))
      this.out.line(line);
    await this.out.flush();
  }

  async close(): Promise<void> {
    this.state = 'logout';
    await this.unselect().catch(() => undefined);
    this.user = null;
  }
}
