/**
 * The APPENDed messages a session encrypts (Sent, Drafts) before they reach the store.
 * The ciphertext's length must be announced upstream before its bytes, so each message is
 * read whole first: bounded by the encryptor's `maxBytes` (over it: `NO [TOOBIG]`) and by
 * its memory budget (`reserve`, append-budget.ts; none left: `NO [LIMIT]`), both decided
 * from the literal's announced size before a byte of it is read. The client relay
 * (client-relay.ts) frames the command and says what to do with upstream's answers; this
 * holds the message being read and the bytes reserved for it.
 */
import { beforeLiteral } from './command-line.js';
import type { AppendEncryptor } from './ports.js';

/** Why a message is not read: larger than `maxBytes`, or no budget left for now. */
export type AppendRefusal = 'too-big' | 'limit';

export class AppendMessages {
  /** Bytes of APPEND literals this session holds under the encryptor's budget. */
  private reserved = 0;
  /** The message being read: its command line up to the literal, and its bytes so far. */
  private message: { head: Buffer; literal: Buffer[] } | null = null;

  constructor(private readonly encryptor: AppendEncryptor) {}

  /** True from a message's announcement until its APPEND command ends or is dropped. */
  get active(): boolean {
    return this.message !== null;
  }

  /**
   * Starts reading the message `line` announces (`size` bytes): null when its bytes are to
   * be read, else why not (and no APPEND is active any more).
   */
  start(line: Buffer, size: number): AppendRefusal | null {
    if (size > this.encryptor.maxBytes) {
      this.message = null;
      return 'too-big';
    }
    if (this.encryptor.reserve !== undefined && !this.encryptor.reserve(size)) {
      this.message = null;
      return 'limit';
    }
    this.reserved += size;
    this.message = { head: beforeLiteral(line), literal: [] };
    return null;
  }

  /** Bytes of the message being read. */
  add(data: Buffer): void {
    this.message?.literal.push(data);
  }

  /**
   * The message read whole, encrypted: the line announcing the ciphertext (synchronizing
   * size, no CRLF) and the ciphertext. The APPEND stays active for a next message.
   */
  encrypt(): { line: Buffer; data: Buffer } {
    const message = this.message!;
    const data = this.encryptor.encrypt(Buffer.concat(message.literal));
    message.literal = [];
    return { line: Buffer.concat([message.head, Buffer.from(`{${data.length}}`, 'latin1')]), data };
  }

  /** The APPEND command ended, or the rest of it is dropped. */
  end(): void {
    this.message = null;
  }

  /** The messages held left the relay (sent upstream, or dropped): their budget is free. */
  release(): void {
    if (this.reserved > 0) this.encryptor.release?.(this.reserved);
    this.reserved = 0;
  }
}
