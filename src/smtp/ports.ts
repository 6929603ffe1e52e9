/**
 * The narrow interfaces the MX talks to. Protocol code in this directory imports these,
 * never the key store, the recryption core or the mail store; `adapters/` connects them
 * to the real modules (docs/design.md §4: protocol code apart from storage).
 */

/** What the directory knows about one RCPT TO address. */
export type RecipientLookup =
  | {
      kind: 'local';
      /** The store's user name to deliver to over LMTP (ASCII; not necessarily the address). */
      mailbox: string;
      /** DER of the recipient's group certificate: mail for this address is encrypted to it. */
      groupCertificate: Uint8Array;
      /** The key store's user the mail is for (an alias's target); for `onCopyStored`. */
      owner?: string;
      /**
       * The groups the mailbox had before a rotation (docs/design.md §6): mail a sender
       * already encrypted to one of them is stored as it is (its devices still hold keys).
       */
      formerGroupCertificates?: Uint8Array[];
    }
  | {
      /**
       * A mailing list: the post is encrypted once to the list group and handed
       * to `accept`, which delivers it to every member (or holds it for the moderator).
       */
      kind: 'list';
      groupCertificate: Uint8Array;
      /** null when the envelope sender may post; else the text of the 550 5.7.1 refusal. */
      refusalFor(sender: string): string | null;
      /** The list headers (RFC 2369, RFC 2919) and subject tag added to a plaintext post. */
      prepare(message: Uint8Array): Uint8Array;
      /**
       * Takes the one encrypted copy; resolves with the reply text once it is durable
       * (delivered, queued or held). Throws an SmtpReply to answer otherwise.
       */
      accept(mailFrom: string, ciphertext: Uint8Array): Promise<string>;
    }
  | {
      /**
       * A list's control address (unsubscribe, confirm): acted on after DATA, and the
       * message itself is not kept. Resolves with the reply text; throws an SmtpReply.
       */
      kind: 'list-command';
      refusalFor(sender: string): string | null;
      run(mailFrom: string): Promise<string>;
    }
  | {
      /**
       * A user whose owner has not enrolled yet: there is no group certificate to encrypt
       * to. `since` is when the account was made (the MX's grace is counted from it).
       */
      kind: 'pending';
      since: number;
    }
  | { kind: 'unknown' }
  | { kind: 'not-local' };

export interface RecipientDirectory {
  /**
   * Resolves an address as given in RCPT TO (may contain UTF-8). Throws
   * `DirectoryUnavailableError` (or anything) when it cannot answer now: the MX replies 451.
   */
  resolve(address: string): Promise<RecipientLookup>;
}

/** Thrown by a directory that cannot answer now (key store down, timeout). */
export class DirectoryUnavailableError extends Error {
  override readonly name = 'DirectoryUnavailableError';
}

/**
 * A message made while it is sent (the encryptor's streaming output): its length and
 * header section are known up front, the rest is produced piece by piece as the LMTP
 * client pulls it, so a 50 MB message is never whole in memory a second time and the
 * event loop runs between pieces.
 */
export interface StreamedMessage {
  readonly byteLength: number;
  /** The header section up to and including the empty line; checked before anything is sent. */
  readonly head: Uint8Array;
  /**
   * The rest, in order, after `head`. Called once; a throw means "abandon this copy". A
   * piece may be overwritten once the next is pulled (the encryption pool reuses its
   * slots): write or copy it before asking for the next.
   */
  body(): Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
  /** Called when the copy will not be (further) sent: what makes it may stop. */
  abandon?(): void;
}

/**
 * A copy the store took, for work after the reply (recrypted points computed at
 * delivery, docs/design.md §4): the key store's users it was for and its first bytes
 * (header section and the start of the body, where the CMS prefix lies; a copy of them).
 */
export interface StoredCopy {
  owners: string[];
  prefix: Uint8Array;
}

/** What is handed to the store: whole, or made while it is sent. */
export type OutgoingMessage = Uint8Array | StreamedMessage;

export interface MessageEncryptor {
  /**
   * The complete message (every header and body byte, trace headers included) → the
   * S/MIME message stored for the group. Any throw means "do not store": the MX answers 451.
   */
  encryptForGroup(
    message: Uint8Array,
    groupCertificate: Uint8Array,
  ): Promise<Uint8Array> | Uint8Array;
  /**
   * The same S/MIME message, made while it is sent (optional; the MX uses it for
   * recipients when offered, encryptForGroup otherwise). `message` does not change until
   * the stream is consumed. Any throw, also from the stream's `body()`, means "do not
   * store": the copy is abandoned before its end of data and the MX answers 451.
   */
  streamForGroup?(
    message: Uint8Array,
    groupCertificate: Uint8Array,
  ): StreamedMessage | Promise<StreamedMessage>;
  /** True when the message already is an S/MIME envelope this group can read: stored as is. */
  isAlreadyForGroup(message: Uint8Array, groupCertificate: Uint8Array): Promise<boolean> | boolean;
}

/** One store user's outcome of a delivery. */
export type DeliveryResult =
  | { mailbox: string; status: 'stored' }
  | {
      mailbox: string;
      /** `temp-failed`: 4xx or no answer (retry); `rejected`: 5xx (retrying will not help). */
      status: 'temp-failed' | 'rejected';
      /** The store's reply code, when it gave one. */
      code?: number;
      /** The store's reply line, for logs (never contains message content). */
      response: string;
    };

export interface DeliveryTarget {
  /**
   * Delivers one message to every mailbox in one transaction and reports each mailbox's
   * outcome. A mailbox reported `stored` is durable (the store said 250 for it). Throws
   * only when nothing can be said per mailbox; the MX treats that as temp-failed for all.
   * A streamed message that fails while it is sent is abandoned before its end of data,
   * so the store keeps nothing of it.
   */
  deliver(
    envelope: { mailFrom: string; mailboxes: string[] },
    message: OutgoingMessage,
  ): Promise<DeliveryResult[]>;
}

/**
 * The DNS lookup mailauth uses for SPF, DKIM and DMARC: `dns.promises.resolve`'s shape
 * (TXT answers are arrays of strings). Missing records throw with code ENOTFOUND/ENODATA.
 */
export type DnsResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;
