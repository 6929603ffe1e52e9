/**
 * What the list part offers the MX and the admin API: delivering an encrypted
 * post to every current member (local mailboxes over LMTP, remote members through the
 * outbound queue) and keeping posts held for moderation. See README.md here.
 */

export interface PostDeliveryResult {
  /** Local mailboxes (members and the archive) that stored the post. */
  local: number;
  /** Remote members whose recrypted copy was queued. */
  remote: number;
}

export interface ListPostDelivery {
  /**
   * Delivers a post that is already S/MIME for the list's current group: the same bytes
   * to every local member's mailbox and the archive (one LMTP transaction), and a copy
   * recrypted for each remote member's certificate into the outbound queue. Resolves
   * only when all of that is durable; throws an SmtpReply-like error (4xx: retry) when
   * it is not, having queued nothing.
   */
  deliverPost(list: string, mailFrom: string, ciphertext: Uint8Array): Promise<PostDeliveryResult>;
}

export interface HeldPost {
  /** Opaque, URL-safe. */
  id: string;
  list: string;
  /** The envelope sender. The gateway cannot read the post: sender and size are all it shows. */
  mailFrom: string;
  bytes: number;
  /** ms since the epoch. */
  received: number;
}

export interface HeldPostStore {
  /** Writes the post (S/MIME to the list group) durably before resolving. */
  hold(list: string, mailFrom: string, ciphertext: Uint8Array): Promise<HeldPost>;
  /** The list's held posts, oldest first. */
  list(list: string): Promise<HeldPost[]>;
  get(list: string, id: string): Promise<{ post: HeldPost; message: Buffer } | null>;
  /** Deletes it (after approval or rejection); absent is not an error. */
  remove(list: string, id: string): Promise<void>;
  /**
   * Where several gateway processes share the posts (Redis): marks the post as being
   * moderated for `ms`; null when another process is moderating it. Resolves with the
   * function that gives the claim back. Absent: one process, nothing to claim.
   */
  claim?(list: string, id: string, ms: number): Promise<(() => Promise<void>) | null>;
}

/** A short plain-text mail from the gateway to a person (notices, confirmations). */
export interface Notice {
  to: string;
  /** The From: header address, e.g. the list's -owner or -request address. */
  from: string;
  subject: string;
  text: string;
  /** Extra header fields, e.g. { 'Reply-To': '…' }. */
  headers?: Record<string, string>;
  /**
   * A recipient elsewhere with a known S/MIME certificate (a remote list member): the
   * notice is encrypted to it, so what it carries (a confirmation address) is theirs alone.
   */
  encryptTo?: Uint8Array;
}

export interface NoticeSender {
  /** Queued durably (it reaches local users through the MX, encrypted on arrival). */
  send(notice: Notice): Promise<void>;
}

/** Everything the MX needs to serve lists beyond the key store (wired in src/gateway/start.ts). */
export interface ListServices {
  delivery: ListPostDelivery;
  /** Where moderated lists hold posts; without it their posts are refused. */
  held?: HeldPostStore;
  notices: NoticeSender;
  /** Key for unsubscribe confirmation tokens (a gateway secret). */
  secret: string;
  now?: () => number;
}
