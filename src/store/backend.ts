/**
 * The narrow interface between the embedded store's protocol layer (IMAP handlers in
 * `imap/`, the LMTP listener in `lmtp/`) and its storage (`maildir/`). Protocol code
 * imports this file, never the storage implementation; storage knows nothing of IMAP
 * sequence numbers (each IMAP session keeps its own view, see `imap/tracker.ts`) and
 * nothing of cryptography: it stores bytes.
 *
 * Mailbox names here are already decoded (UTF-8) and use '/' as hierarchy delimiter.
 */

import type { MessageStructure } from './mime/types.js';
import type { SearchFields } from './mime/search-fields.js';

export type { MessageStructure } from './mime/types.js';
export type { SearchFields } from './mime/search-fields.js';

/** A system flag (`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`) or a keyword. */
export type Flag = string;

export type SpecialUse = '\\Sent' | '\\Drafts' | '\\Trash' | '\\Junk' | '\\Archive';

export interface MailboxInfo {
  name: string;
  specialUse?: SpecialUse;
  subscribed: boolean;
  /** `\HasChildren` / `\HasNoChildren` are derived by the protocol layer from names. */
  noSelect: boolean;
}

export interface MailboxStatus {
  messages: number;
  recent: number;
  unseen: number;
  uidNext: number;
  uidValidity: number;
  /** HIGHESTMODSEQ (RFC 7162 §3.1.2). */
  highestModseq: number;
}

/** What the index keeps per message, so listing 10,000 messages reads no message file. */
export interface MessageRecord {
  uid: number;
  flags: Flag[];
  internalDate: Date;
  /** RFC822.SIZE: exact byte length of the stored message (CRLF line endings). */
  size: number;
  /** Mod-sequence (RFC 7162): raised by every change of the message; never goes backwards. */
  modseq: number;
}

export interface AppendOptions {
  flags?: Flag[];
  internalDate?: Date;
}

export interface AppendResult {
  uidValidity: number;
  uid: number;
}

export type FlagOperation = 'set' | 'add' | 'remove';

/** A change another session (or a delivery) made to a mailbox. */
export type MailboxEvent =
  | { type: 'exists'; uids: number[] }
  | { type: 'expunge'; uids: number[] }
  | { type: 'flags'; uid: number; flags: Flag[] }
  /** Something the person must read (RFC 9051 §7.1 ALERT): `* OK [ALERT] text` to the session. */
  | { type: 'alert'; text: string }
  /**
   * The mailbox cannot be shown to this session any more (a new UIDVALIDITY, or deleted
   * where the backend mirrors another server; RFC 9051 §2.3.1.1): `* BYE text`, session ends.
   */
  | { type: 'bye'; text: string };

/** Thrown by storage with a reason the protocol layer maps to a reply (IMAP NO [code], LMTP 4xx/5xx). */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code:
      | 'no-such-user'
      | 'no-such-mailbox'
      | 'mailbox-exists'
      | 'invalid-name'
      | 'no-such-message'
      | 'over-quota'
      | 'io-error'
      | 'too-large'
      /** A per-mailbox limit was hit (e.g. more than 26 distinct keywords, Maildir's letters a-z). */
      | 'limit',
    message: string,
  ) {
    super(message);
  }
}

/** The whole store: users' mail on local disk. */
export interface MailStore {
  userExists(user: string): Promise<boolean>;
  /** Creates the user's mail directory with INBOX, Sent, Drafts, Trash, Junk, Archive. */
  createUser(user: string): Promise<void>;
  /** Durable on return: file and directory fsynced. Never leaves a half-visible message. */
  deliver(user: string, message: Uint8Array, options?: AppendOptions): Promise<AppendResult>;
  openUser(user: string): Promise<UserStore>;
  close(): Promise<void>;
}

/** One user's mailboxes, as seen by one IMAP session. */
export interface UserStore {
  readonly user: string;
  listMailboxes(): Promise<MailboxInfo[]>;
  createMailbox(name: string, specialUse?: SpecialUse): Promise<void>;
  deleteMailbox(name: string): Promise<void>;
  renameMailbox(from: string, to: string): Promise<void>;
  setSubscribed(name: string, subscribed: boolean): Promise<void>;
  /** Every subscribed name, also those with no mailbox (RFC 3501 §6.3.6 keeps them). */
  subscriptions(): Promise<string[]>;
  status(name: string): Promise<MailboxStatus>;
  append(name: string, message: Uint8Array, options?: AppendOptions): Promise<AppendResult>;
  openMailbox(name: string, options: { readOnly: boolean }): Promise<MailboxHandle>;
}

/** An open (selected) mailbox. Events from other handles on the same mailbox arrive via `onEvent`. */
export interface MailboxHandle {
  readonly name: string;
  readonly uidValidity: number;
  readonly readOnly: boolean;
  uidNext(): number;
  /** Every message, ascending UID, from the index. */
  records(): MessageRecord[];
  /** Number of messages that were `\Recent` for this handle when it was opened. */
  recentCount(): number;
  /** Whether the message is `\Recent` for this handle (claimed at open, or delivered while it was open). */
  isRecent(uid: number): boolean;
  /**
   * Parsed MIME tree and envelope from the index (no message file is read when indexed).
   * Offsets in it are valid for `read(uid, range)`. Throws StoreError('no-such-message').
   */
  structure(uid: number): Promise<MessageStructure>;
  /**
   * `structure` of many messages at once (SEARCH, SORT, THREAD over a mailbox), read from
   * the index in one go; messages already gone are missing from the map.
   */
  structures(uids: number[]): Promise<Map<number, MessageStructure>>;
  /**
   * What SEARCH compares of the headers of many messages, from the index (a message
   * lacking them is read once and indexed); messages already gone are missing from the
   * map. Only the fields named in `wanted` are sure to be filled. Optional: a handle
   * without it is searched message by message from structures and headers.
   */
  searchFields?(
    uids: number[],
    wanted: ReadonlyArray<keyof SearchFields>,
  ): Promise<Map<number, SearchFields>>;
  /** Keywords defined in this mailbox (for PERMANENTFLAGS / FLAGS); at most 26 can exist. */
  keywords(): string[];
  /** The stored bytes, or a byte range of them (for BODY[]<partial> without reading all). */
  read(uid: number, range?: { start: number; length: number }): Promise<Uint8Array>;
  setFlags(uids: number[], operation: FlagOperation, flags: Flag[]): Promise<MessageRecord[]>;
  /**
   * STORE (UNCHANGEDSINCE n) (RFC 7162 §3.1.3): changes only messages whose mod-sequence
   * is at most `unchangedSince`, atomically with the check; the others are `modified`.
   */
  setFlagsUnchangedSince(
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
    unchangedSince: number,
  ): Promise<{ records: MessageRecord[]; modified: number[] }>;
  /** HIGHESTMODSEQ of the mailbox (RFC 7162 §3.1.2). */
  highestModseq(): number;
  /** UIDs expunged after mod-sequence `since`, as ascending ranges (may include UIDs never seen). */
  vanished(since: number): Array<[number, number]>;
  /** Removes `\Deleted` messages (only those in `uids` when given); returns expunged UIDs. */
  expunge(uids?: number[]): Promise<number[]>;
  copy(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }>;
  move(
    uids: number[],
    destination: string,
  ): Promise<{ uidValidity: number; pairs: Array<[number, number]> }>;
  onEvent(listener: (event: MailboxEvent) => void): void;
  close(): Promise<void>;
}
