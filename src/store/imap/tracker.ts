import type { MailboxEvent as AnyMailboxEvent } from '../backend.js';

/** What the tracker numbers: `alert` and `bye` are the session's (session.ts). */
type MailboxEvent = Exclude<AnyMailboxEvent, { type: 'alert' | 'bye' }>;
import { formatSet } from './commands/sequence.js';
import { flagList } from './serializer.js';

/**
 * One session's view of its selected mailbox: which UID each sequence number means
 * (go-imap's SessionTracker). Storage reports changes as UIDs; they are queued here and
 * turned into EXISTS / EXPUNGE / FETCH FLAGS only when the protocol allows: EXPUNGE
 * never while a FETCH, STORE or SEARCH by sequence number is running (RFC 3501 §7.4.1),
 * and nothing after a held-back EXPUNGE, so numbers stay consistent for the client.
 */
export class SessionTracker {
  private uids: number[];
  private queue: MailboxEvent[] = [];
  private lastRecent = -1;
  /** QRESYNC enabled (RFC 7162 §3.2.10): expunges go out as one `* VANISHED` line. */
  vanished = false;
  /** CONDSTORE enabled: a flag change carries UID and MODSEQ (RFC 7162 §3.1). */
  modseqs = false;

  constructor(initial: number[]) {
    this.uids = initial;
  }

  get count(): number {
    return this.uids.length;
  }

  /** UIDs in sequence order (index + 1 = sequence number). */
  get all(): readonly number[] {
    return this.uids;
  }

  get maxUid(): number {
    return this.uids.length === 0 ? 0 : (this.uids[this.uids.length - 1] as number);
  }

  push(event: MailboxEvent): void {
    this.queue.push(event);
  }

  get hasPending(): boolean {
    return this.queue.length > 0;
  }

  /** Sequence number of `uid`, 0 when the session does not know it. */
  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.uids[mid] as number;
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Removes this session's own expunged UIDs; returns the EXPUNGE lines in order. */
  expunged(uids: number[]): string[] {
    const lines: string[] = [];
    const gone: number[] = [];
    for (const uid of [...uids].sort((a, b) => a - b)) {
      const seq = this.seqOf(uid);
      if (seq === 0) continue;
      this.uids.splice(seq - 1, 1);
      gone.push(uid);
      lines.push(`* ${seq} EXPUNGE`);
    }
    if (this.vanished) return gone.length === 0 ? [] : [`* VANISHED ${formatSet(gone)}`];
    return lines;
  }

  /**
   * Turns queued events into untagged responses. `isRecent` gives one message's \Recent
   * state, `flagsNow` its current flags (null once it is gone from storage).
   *
   * A flag change is reported with the flags the message has now, not those the event
   * carried: the event may have waited behind a held EXPUNGE while this session's own
   * STORE already reported newer flags, and the client keeps the last FETCH FLAGS it saw.
   */
  drain(
    allowExpunge: boolean,
    isRecent: (uid: number) => boolean,
    withUid: boolean,
    flagsNow: (uid: number) => readonly string[] | null = () => null,
    modseqNow: (uid: number) => number = () => 0,
  ): string[] {
    const lines: string[] = [];
    while (this.queue.length > 0) {
      const event = this.queue[0] as MailboxEvent;
      if (event.type === 'expunge' && !allowExpunge) break;
      this.queue.shift();
      if (event.type === 'expunge') lines.push(...this.expunged(event.uids));
      else if (event.type === 'exists') {
        const last = this.maxUid;
        const fresh = event.uids.filter((u) => u > last).sort((a, b) => a - b);
        if (fresh.length === 0) continue;
        this.uids.push(...fresh);
        lines.push(`* ${this.uids.length} EXISTS`);
        const recent = this.uids.reduce((n, u) => (isRecent(u) ? n + 1 : n), 0);
        if (recent !== this.lastRecent) lines.push(`* ${recent} RECENT`);
        this.lastRecent = recent;
      } else {
        const seq = this.seqOf(event.uid);
        if (seq === 0) continue;
        const flags = flagsNow(event.uid) ?? event.flags;
        const flagPart = `FLAGS ${flagList(flags, isRecent(event.uid))}`;
        if (this.modseqs)
          lines.push(
            `* ${seq} FETCH (UID ${event.uid} ${flagPart} MODSEQ (${modseqNow(event.uid)}))`,
          );
        else lines.push(`* ${seq} FETCH (${flagPart}${withUid ? ` UID ${event.uid}` : ''})`);
      }
    }
    return lines;
  }

  /** Records the \Recent count announced at SELECT so later EXISTS only repeat RECENT on change. */
  setAnnouncedRecent(n: number): void {
    this.lastRecent = n;
  }
}
