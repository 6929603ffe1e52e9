import type {
  MailboxEvent,
  MailboxHandle,
  MailStore,
  MessageRecord,
  UserStore,
} from '../backend.js';
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
  /** The keywords last announced in `* FLAGS` (joined by spaces). */
  announced: string;
}

const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const MAX_KEYWORDS = 26;

/** The current record of `uid` in storage, or null when it is gone (binary search: records ascend by UID). */
export function recordOf(handle: MailboxHandle, uid: number): MessageRecord | null {
  const records = handle.records();
  let lo = 0;
  let hi = records.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = records[mid] as MessageRecord;
    if (r.uid === uid) return r;
    if (r.uid < uid) lo = mid + 1;
    else hi = mid - 1;
  }
  return null;
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
  /** CONDSTORE enabled (RFC 7162 §3.1): FETCH responses carry MODSEQ from then on. */
  condstore = false;
  /** QRESYNC enabled (RFC 7162 §3.2.3): expunges are reported as VANISHED. */
  qresync = false;
  /** The selected mailbox's `alert`/`bye` events, sent before its other updates. */
  private notices: Array<Extract<MailboxEvent, { type: 'alert' | 'bye' }>> = [];

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
      'CONDSTORE',
      'QRESYNC',
    ];
    if (this.state === 'not-authenticated') {
      if (this.config.tlsAvailable && !this.secure) caps.push('STARTTLS');
      caps.push('AUTH=PLAIN');
    }
    return caps;
  }

  /**
   * A CONDSTORE-enabling command ran (RFC 7162 §3.1): the selected mailbox's
   * HIGHESTMODSEQ is announced if it was not at SELECT.
   */
  enableCondstore(): void {
    if (this.condstore) return;
    this.condstore = true;
    if (this.selected !== null) this.selected.tracker.modseqs = true;
    if (this.selected !== null)
      this.out.line(`* OK [HIGHESTMODSEQ ${this.selected.handle.highestModseq()}] Highest`);
  }

  enableQresync(): void {
    this.enableCondstore();
    this.qresync = true;
    if (this.selected !== null) this.selected.tracker.vanished = true;
  }

  /** Opens `handle` as the selected mailbox, replacing (and closing) any previous one. */
  async select(handle: MailboxHandle): Promise<Selected> {
    await this.unselect();
    const tracker = new SessionTracker(handle.records().map((r) => r.uid));
    tracker.modseqs = this.condstore;
    tracker.vanished = this.qresync;
    const selected: Selected = { handle, tracker, readOnly: handle.readOnly, announced: '' };
    handle.onEvent((event) => {
      // Notices go out with the next updates, never inside another response's lines.
      if (event.type === 'alert' || event.type === 'bye') this.notices.push(event);
      else tracker.push(event);
      if (this.idling) void this.flushUpdates(true).catch(() => undefined);
    });
    this.selected = selected;
    this.state = 'selected';
    return selected;
  }

  async unselect(): Promise<void> {
    const sel = this.selected;
    this.selected = null;
    this.notices = [];
    if (this.state === 'selected') this.state = 'authenticated';
    if (sel !== null) await sel.handle.close();
  }

  /**
   * `* FLAGS` and `[PERMANENTFLAGS]` for the selected mailbox (RFC 3501 §7.2.6, §7.1): at
   * SELECT, and again whenever the mailbox's keywords changed since (a STORE of a new
   * keyword, here or in another session), before any FETCH that shows the keyword.
   */
  announceFlags(sel: Selected, force = false): void {
    const keywords = sel.handle.keywords();
    const joined = keywords.join(' ');
    if (!force && joined === sel.announced) return;
    sel.announced = joined;
    this.out.line(`* FLAGS (${[...SYSTEM_FLAGS, ...keywords].join(' ')})`);
    const permanent = sel.readOnly
      ? []
      : [...SYSTEM_FLAGS, ...keywords, ...(keywords.length < MAX_KEYWORDS ? ['\\*'] : [])];
    this.out.line(`* OK [PERMANENTFLAGS (${permanent.join(' ')})] Flags permitted`);
  }

  /** Sends pending untagged updates for the selected mailbox. */
  async flushUpdates(allowExpunge: boolean): Promise<void> {
    const sel = this.selected;
    if (sel === null) return;
    for (const notice of this.notices.splice(0)) {
      if (notice.type === 'alert') {
        this.out.line(`* OK [ALERT] ${notice.text}`);
        continue;
      }
      // The backend cannot serve this mailbox any more: end the session (README.md, "Events").
      this.out.line(`* BYE ${notice.text}`);
      this.state = 'logout';
      this.input.stop();
      await this.out.end();
      return;
    }
    this.announceFlags(sel);
    if (!sel.tracker.hasPending) return;
    const lines = sel.tracker.drain(
      allowExpunge,
      (uid) => sel.handle.isRecent(uid),
      false,
      (uid) => recordOf(sel.handle, uid)?.flags ?? null,
      (uid) => recordOf(sel.handle, uid)?.modseq ?? sel.handle.highestModseq(),
    );
    for (const line of lines) this.out.line(line);
    await this.out.flush();
  }

  async close(): Promise<void> {
    this.state = 'logout';
    await this.unselect().catch(() => undefined);
    this.user = null;
  }
}
