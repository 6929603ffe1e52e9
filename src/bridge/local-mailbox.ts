/**
 * One mailbox of the local view: the cached records (cache.ts), the sessions that have it
 * open, and the two ways it changes. A client's change (STORE, EXPUNGE, COPY, MOVE) is
 * made on the gateway first (`UpstreamWrites`) and only then locally, so the local view
 * never shows what the gateway refused; a change the sync found on the gateway (new
 * messages, flags set by another device, expunges) is applied here and reported to every
 * open session as the store's events, which the IMAP layer turns into untagged responses.
 */
import {
  StoreError,
  type Flag,
  type FlagOperation,
  type MailboxEvent,
  type MessageRecord,
  type MessageStructure,
} from '../store/backend.js';
import { parseMessageStructure } from '../store/mime/index.js';
import type { BridgeCache, CachedMailbox, CachedMessage } from './cache.js';
import { onGateway } from './errors.js';
import { insertByUid, RecordList, removeUids, searchUid, toRecord } from './record-list.js';

/** The gateway side of a client's change, by the gateway's UIDs (equal to the local ones). */
export interface UpstreamWrites {
  setFlags(path: string, uids: number[], operation: FlagOperation, flags: Flag[]): Promise<void>;
  expunge(path: string, uids: number[]): Promise<void>;
  /** Returns the gateway's COPYUID map (source UID → destination UID); empty without UIDPLUS. */
  copy(
    path: string,
    uids: number[],
    destination: string,
    move: boolean,
  ): Promise<Map<number, number>>;
}

/** What a handle (local-handle.ts) is told by its mailbox. */
export interface MailboxListener {
  readonly readOnly: boolean;
  event(event: MailboxEvent): void;
  claimRecent(uids: number[]): void;
}

/**
 * Parsed structures kept per mailbox: parsing again means reading and decrypting the
 * cached file. Bounded, so a 50,000-message mailbox does not hold all of them.
 */
const STRUCTURE_CACHE_ENTRIES = 2048;

const SYSTEM_FLAGS = new Map(
  ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'].map((f) => [f.toLowerCase(), f]),
);

/** `\seen` → `\Seen`, `\Recent` dropped, another `\X` refused (backend.ts contract). */
export function normaliseFlags(flags: Flag[]): Flag[] {
  const out = new Set<Flag>();
  for (const flag of flags) {
    if (!flag.startsWith('\\')) {
      out.add(flag);
      continue;
    }
    const lower = flag.toLowerCase();
    if (lower === '\\recent') continue;
    const system = SYSTEM_FLAGS.get(lower);
    if (system === undefined) throw new StoreError('invalid-name', `unknown system flag ${flag}`);
    out.add(system);
  }
  return [...out];
}

/**
 * The gateway's \Recent belongs to the bridge's own connection there (it selects each
 * mailbox to sync it), not to a local client: the local view keeps its own \Recent
 * (local-handle.ts). Kept in the flags, it would flap on every sync round, each time a
 * new mod-sequence and an unsolicited FETCH to every session.
 */
function withoutRecent(flags: Flag[]): Flag[] {
  return flags.filter((flag) => flag.toLowerCase() !== '\\recent');
}

function applyOperation(current: Flag[], operation: FlagOperation, flags: Flag[]): Flag[] {
  if (operation === 'set') return [...flags].sort();
  const set = new Set(current);
  for (const flag of flags) {
    if (operation === 'add') set.add(flag);
    else set.delete(flag);
  }
  return [...set].sort();
}

export class LocalMailbox {
  private readonly listeners = new Set<MailboxListener>();
  /** `records()`, kept in step change by change (record-list.ts). */
  private readonly recordList = new RecordList();
  /** Arrived while no read-write session had the mailbox open: \Recent for the next one. */
  private unclaimedRecent: number[] = [];
  /** Expunged UIDs with their mod-sequence, since this process started (QRESYNC VANISHED). */
  private readonly expunged: Array<{ uid: number; modseq: number }> = [];
  private readonly structures = new Map<number, MessageStructure>();

  /** Shown to every session of this mailbox as `* OK [ALERT]` (the gateway refused the device). */
  alertText: string | null = null;
  /** When a session last opened this mailbox (folder-watch.ts watches recent ones first). */
  lastOpened = 0;

  /** `onSessions`: told when a session opens or closes this mailbox. */
  constructor(
    readonly state: CachedMailbox,
    private readonly cache: BridgeCache,
    private readonly upstream: UpstreamWrites,
    private readonly onSessions: () => void = () => undefined,
  ) {}

  /** Sessions that have this mailbox selected. */
  get sessions(): number {
    return this.listeners.size;
  }

  get name(): string {
    return this.state.name;
  }

  records(): MessageRecord[] {
    return this.recordList.get(this.state.messages);
  }

  /** `state.messages` ascends by UID: a binary search, no second index to keep in step. */
  message(uid: number): CachedMessage | undefined {
    const at = searchUid(this.state.messages, uid);
    return at < 0 ? undefined : this.state.messages[at];
  }

  keywords(): string[] {
    const keywords = new Set<string>();
    for (const message of this.state.messages)
      for (const flag of message.flags) if (!flag.startsWith('\\')) keywords.add(flag);
    return [...keywords].sort();
  }

  read(uid: number): Buffer {
    let bytes: Buffer | null;
    try {
      bytes = this.message(uid) ? this.cache.readMessage(this.state, uid) : null;
    } catch (error) {
      // A cache file that does not open (damaged, or from another key): NO [SERVERBUG], logged.
      throw new StoreError('io-error', (error as Error).message);
    }
    if (bytes === null) throw new StoreError('no-such-message', `no message ${uid}`);
    return bytes;
  }

  structure(uid: number): MessageStructure {
    const known = this.structures.get(uid);
    if (known !== undefined) return known;
    const structure = parseMessageStructure(this.read(uid));
    this.structures.set(uid, structure);
    if (this.structures.size > STRUCTURE_CACHE_ENTRIES) {
      const oldest = this.structures.keys().next().value;
      if (oldest !== undefined) this.structures.delete(oldest);
    }
    return structure;
  }

  attach(listener: MailboxListener): void {
    this.listeners.add(listener);
    this.lastOpened = Date.now();
    this.onSessions();
    if (!listener.readOnly && this.unclaimedRecent.length > 0) {
      listener.claimRecent(this.unclaimedRecent);
      this.unclaimedRecent = [];
    } else listener.claimRecent([]);
  }

  detach(listener: MailboxListener): void {
    if (this.listeners.delete(listener)) this.onSessions();
  }

  /** Every session of this mailbox, now and later, shows `text` as an ALERT. */
  alert(text: string): void {
    this.alertText = text;
    this.emit({ type: 'alert', text });
  }

  /**
   * Ends every session that has this mailbox selected (`* BYE text`): its UIDs changed
   * meaning or it is gone, and RFC 9051 §2.3.1.1 forbids a new UIDVALIDITY within a session.
   */
  endSessions(text: string): void {
    const ended = [...this.listeners];
    this.listeners.clear();
    for (const listener of ended) listener.event({ type: 'bye', text });
    if (ended.length > 0) this.onSessions();
  }

  /** A new UIDVALIDITY on the gateway: sessions end, then the old messages are dropped. */
  reset(uidValidity: number): void {
    this.endSessions(
      `${this.name} changed on the gateway (new UIDVALIDITY); select it again to see it`,
    );
    for (const message of this.state.messages) this.cache.removeMessage(this.state, message.uid);
    this.state.messages = [];
    this.state.uidValidity = uidValidity;
    this.state.uidNext = 1;
    delete this.state.upstreamModseq;
    this.recordList.clear();
    this.structures.clear();
    this.expunged.length = 0;
    this.unclaimedRecent = [];
    // A new mod-sequence: the state journal writes a mailbox whose HIGHESTMODSEQ moved (cache.ts).
    this.nextModseq();
    this.changed();
  }

  private changed(): void {
    this.cache.saveSoon();
  }

  private nextModseq(): number {
    this.state.highestModseq += 1;
    return this.state.highestModseq;
  }

  private emit(event: MailboxEvent, except?: MailboxListener): void {
    for (const listener of this.listeners) if (listener !== except) listener.event(event);
  }

  // A client's changes: the gateway first.

  async setFlags(
    uids: number[],
    operation: FlagOperation,
    rawFlags: Flag[],
    by: MailboxListener,
    unchangedSince?: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }> {
    const flags = normaliseFlags(rawFlags);
    const modified: number[] = [];
    const targets: CachedMessage[] = [];
    for (const uid of uids) {
      const message = this.message(uid);
      if (message === undefined) continue;
      if (unchangedSince !== undefined && message.modseq > unchangedSince) modified.push(uid);
      else targets.push(message);
    }
    if (targets.length > 0)
      await onGateway(() =>
        this.upstream.setFlags(
          this.state.path,
          targets.map((m) => m.uid),
          operation,
          flags,
        ),
      );
    for (const message of targets)
      this.updateFlags(message, applyOperation(message.flags, operation, flags), by);
    const records = uids.flatMap((uid) => {
      const message = this.message(uid);
      return message ? [toRecord(message)] : [];
    });
    return { records, modified };
  }

  async expunge(uids: number[] | undefined, by: MailboxListener): Promise<number[]> {
    const wanted = uids === undefined ? null : new Set(uids);
    const doomed = this.state.messages
      .filter((m) => m.flags.includes('\\Deleted') && (wanted === null || wanted.has(m.uid)))
      .map((m) => m.uid);
    if (doomed.length === 0) return [];
    await onGateway(() => this.upstream.expunge(this.state.path, doomed));
    this.remove(doomed, by);
    return doomed;
  }

  /** COPY/MOVE: on the gateway, then the cached plaintext under the destination's new UIDs. */
  async copyTo(
    uids: number[],
    destination: LocalMailbox,
    move: boolean,
    by: MailboxListener,
  ): Promise<Array<[number, number]>> {
    const sources = uids.map((uid) => {
      const message = this.message(uid);
      if (message === undefined) throw new StoreError('no-such-message', `no message ${uid}`);
      return message;
    });
    if (sources.length === 0) return [];
    const map = await onGateway(() =>
      this.upstream.copy(
        this.state.path,
        sources.map((m) => m.uid),
        destination.state.path,
        move,
      ),
    );
    const pairs: Array<[number, number]> = [];
    for (const source of sources) {
      const target = map.get(source.uid);
      if (target === undefined) continue;
      const bytes = this.cache.readMessage(this.state, source.uid);
      if (bytes !== null)
        destination.add({ ...source, uid: target, flags: [...source.flags] }, bytes);
      pairs.push([source.uid, target]);
    }
    if (move)
      this.remove(
        sources.map((m) => m.uid),
        by,
      );
    return pairs;
  }

  // Changes found on the gateway by the sync (or made by a client, after the gateway).

  /** A message new to the local view (from the sync, or a COPY's target): every session hears of it. */
  add(message: CachedMessage, plaintext: Uint8Array): void {
    if (this.message(message.uid) !== undefined) return;
    this.cache.writeMessage(this.state, message.uid, plaintext);
    const entry: CachedMessage = {
      ...message,
      flags: withoutRecent(message.flags),
      modseq: this.nextModseq(),
    };
    // New mail has the highest UID: appended; anything else goes into its place.
    insertByUid(this.state.messages, entry);
    this.recordList.added(entry);
    this.state.uidNext = Math.max(this.state.uidNext, entry.uid + 1);
    this.changed();
    const taker = [...this.listeners].find((l) => !l.readOnly);
    if (taker === undefined) this.unclaimedRecent.push(entry.uid);
    else taker.claimRecent([entry.uid]);
    this.emit({ type: 'exists', uids: [entry.uid] });
  }

  updateFlags(message: CachedMessage, flags: Flag[], by: MailboxListener | null): void {
    const sorted = withoutRecent(flags).sort();
    if (sorted.join(' ') === message.flags.join(' ')) return;
    message.flags = sorted;
    message.modseq = this.nextModseq();
    this.recordList.changed(message);
    this.changed();
    this.emit({ type: 'flags', uid: message.uid, flags: sorted }, by ?? undefined);
  }

  remove(uids: number[], by: MailboxListener | null): void {
    const gone = new Set(uids);
    // In place (record-list.ts): a few spliced where a binary search finds them.
    const removed = removeUids(this.state.messages, gone);
    if (removed.length === 0) return;
    this.recordList.removed(gone);
    const modseq = this.nextModseq();
    for (const uid of removed) {
      this.cache.removeMessage(this.state, uid);
      this.structures.delete(uid);
      this.expunged.push({ uid, modseq });
    }
    this.changed();
    this.emit({ type: 'expunge', uids: removed }, by ?? undefined);
  }

  vanished(since: number): Array<[number, number]> {
    const uids = this.expunged
      .filter((e) => e.modseq > since)
      .map((e) => e.uid)
      .sort((a, b) => a - b);
    const ranges: Array<[number, number]> = [];
    for (const uid of uids) {
      const last = ranges[ranges.length - 1];
      if (last !== undefined && uid === last[1] + 1) last[1] = uid;
      else if (last === undefined || uid > last[1]) ranges.push([uid, uid]);
    }
    return ranges;
  }
}
