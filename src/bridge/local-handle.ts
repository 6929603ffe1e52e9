/** One session's open mailbox of the local view (the `MailboxHandle` of src/store/backend.ts). */
import {
  StoreError,
  type Flag,
  type FlagOperation,
  type MailboxEvent,
  type MailboxHandle,
  type MessageRecord,
  type MessageStructure,
} from '../store/backend.js';
import type { LocalMailbox, MailboxListener } from './local-mailbox.js';

export class LocalMailboxHandle implements MailboxHandle, MailboxListener {
  readonly name: string;
  readonly uidValidity: number;
  private readonly listeners: Array<(event: MailboxEvent) => void> = [];
  private readonly recent = new Set<number>();
  private initialRecent = -1;
  private closed = false;

  constructor(
    private readonly mailbox: LocalMailbox,
    readonly readOnly: boolean,
    private readonly resolve: (name: string) => LocalMailbox,
  ) {
    this.name = mailbox.name;
    this.uidValidity = mailbox.state.uidValidity;
    mailbox.attach(this);
  }

  // MailboxListener
  event(event: MailboxEvent): void {
    if (event.type === 'expunge') for (const uid of event.uids) this.recent.delete(uid);
    if (!this.closed) for (const listener of this.listeners) listener(event);
  }

  claimRecent(uids: number[]): void {
    for (const uid of uids) this.recent.add(uid);
    if (this.initialRecent === -1) this.initialRecent = this.recent.size;
  }

  // MailboxHandle
  uidNext(): number {
    return this.mailbox.state.uidNext;
  }

  records(): MessageRecord[] {
    return this.mailbox.records();
  }

  recentCount(): number {
    return Math.max(0, this.initialRecent);
  }

  isRecent(uid: number): boolean {
    return this.recent.has(uid);
  }

  keywords(): string[] {
    return this.mailbox.keywords();
  }

  async structure(uid: number): Promise<MessageStructure> {
    return this.mailbox.structure(uid);
  }

  async structures(uids: number[]): Promise<Map<number, MessageStructure>> {
    const out = new Map<number, MessageStructure>();
    for (const uid of uids) {
      try {
        out.set(uid, await this.structure(uid));
      } catch (error) {
        if (!(error instanceof StoreError && error.code === 'no-such-message')) throw error;
      }
    }
    return out;
  }

  async read(uid: number, range?: { start: number; length: number }): Promise<Uint8Array> {
    const bytes = this.mailbox.read(uid);
    if (range === undefined) return bytes;
    return bytes.subarray(range.start, Math.min(bytes.length, range.start + range.length));
  }

  async setFlags(
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
  ): Promise<MessageRecord[]> {
    this.writable();
    return (await this.mailbox.setFlags(uids, operation, flags, this)).records;
  }

  async setFlagsUnchangedSince(
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
    unchangedSince: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }> {
    this.writable();
    return this.mailbox.setFlags(uids, operation, flags, this, unchangedSince);
  }

  highestModseq(): number {
    return this.mailbox.state.highestModseq;
  }

  vanished(since: number): Array<[number, number]> {
    return this.mailbox.vanished(since);
  }

  async expunge(uids?: number[]): Promise<number[]> {
    this.writable();
    return this.mailbox.expunge(uids, this);
  }

  async copy(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }> {
    const target = this.resolve(destination);
    const pairs = await this.mailbox.copyTo(uids, target, false, this);
    return { uidValidity: target.state.uidValidity, pairs };
  }

  async move(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }> {
    this.writable();
    const target = this.resolve(destination);
    const pairs = await this.mailbox.copyTo(uids, target, true, this);
    return { uidValidity: target.state.uidValidity, pairs };
  }

  onEvent(listener: (event: MailboxEvent) => void): void {
    this.listeners.push(listener);
    // A session that selects the mailbox after the alert was raised sees it too.
    const alert = this.mailbox.alertText;
    if (alert !== null) listener({ type: 'alert', text: alert });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.mailbox.detach(this);
  }

  private writable(): void {
    if (this.readOnly) throw new StoreError('io-error', 'mailbox is open read-only');
  }
}
