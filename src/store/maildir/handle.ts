import {
  StoreError,
  type Flag,
  type FlagOperation,
  type MailboxEvent,
  type MailboxHandle,
  type MessageRecord,
  type SearchFields,
} from '../backend.js';
import type { MessageStructure } from '../mime/types.js';
import { copyMessages } from './mailbox-copy.js';
import type { MailboxState, StateSubscriber } from './mailbox-state.js';

/**
 * One session's open mailbox: a view on the shared MailboxState that remembers which
 * messages are \Recent for this session and forwards other sessions' changes to its
 * listeners.
 */
export class MaildirMailboxHandle implements MailboxHandle, StateSubscriber {
  readonly name: string;
  readonly uidValidity: number;
  private readonly recent = new Set<number>();
  private initialRecent = -1;
  private readonly listeners: Array<(event: MailboxEvent) => void> = [];
  private closed = false;

  constructor(
    private readonly state: MailboxState,
    readonly readOnly: boolean,
    private readonly resolve: (name: string) => Promise<MailboxState>,
  ) {
    this.name = state.name;
    this.uidValidity = state.uidValidity;
  }

  // StateSubscriber
  claimRecent(uids: number[]): void {
    for (const uid of uids) this.recent.add(uid);
    if (this.initialRecent === -1) this.initialRecent = this.recent.size;
  }

  dropRecent(uids: number[]): void {
    for (const uid of uids) this.recent.delete(uid);
  }

  emit(event: MailboxEvent): void {
    if (this.closed) return;
    for (const listener of this.listeners) listener(event);
  }

  // MailboxHandle
  uidNext(): number {
    return this.state.nextUid;
  }

  records(): MessageRecord[] {
    return this.state.records();
  }

  recentCount(): number {
    return Math.max(0, this.initialRecent);
  }

  isRecent(uid: number): boolean {
    return this.recent.has(uid);
  }

  keywords(): string[] {
    return this.state.keywords.filter((k) => !k.startsWith('\u0000'));
  }

  async read(uid: number, range?: { start: number; length: number }): Promise<Uint8Array> {
    return this.state.reads.read(uid, range);
  }

  async structure(uid: number): Promise<MessageStructure> {
    return this.state.reads.structure(uid);
  }

  async structures(uids: number[]): Promise<Map<number, MessageStructure>> {
    return this.state.reads.structures(uids);
  }

  async searchFields(
    uids: number[],
    wanted: ReadonlyArray<keyof SearchFields>,
  ): Promise<Map<number, SearchFields>> {
    return this.state.reads.searchFields(uids, wanted);
  }

  async setFlags(
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
  ): Promise<MessageRecord[]> {
    this.writable();
    return (await this.state.setFlags(uids, operation, flags, this)).records;
  }

  async setFlagsUnchangedSince(
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
    unchangedSince: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }> {
    this.writable();
    return this.state.setFlags(uids, operation, flags, this, unchangedSince);
  }

  highestModseq(): number {
    return this.state.modseq.highest;
  }

  vanished(since: number): Array<[number, number]> {
    return this.state.modseq.vanished(
      since,
      this.state.nextUid,
      this.state.records().map((r) => r.uid),
    );
  }

  async expunge(uids?: number[]): Promise<number[]> {
    this.writable();
    return this.state.remove(uids, true, this);
  }

  async copy(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }> {
    const dest = await this.resolve(destination);
    const pairs = await copyMessages(this.state, uids, dest);
    return { uidValidity: dest.uidValidity, pairs };
  }

  async move(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }> {
    this.writable();
    const dest = await this.resolve(destination);
    const pairs = await copyMessages(this.state, uids, dest);
    await this.state.remove(
      pairs.map(([src]) => src),
      false,
      this,
    );
    return { uidValidity: dest.uidValidity, pairs };
  }

  onEvent(listener: (event: MailboxEvent) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.state.detach(this);
  }

  private writable(): void {
    if (this.readOnly) throw new StoreError('io-error', 'mailbox is open read-only');
  }
}
