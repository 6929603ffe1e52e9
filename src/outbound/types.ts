/**
 * The outbound queue's surface (copies of list posts for remote members, and the
 * gateway's own notices). Mail handed to `enqueue` is on disk (fsync'd) before the
 * promise resolves; a worker delivers it over SMTP (nodemailer), retries with backoff,
 * survives restarts, and after `bounceAfter` (or a permanent 5xx) sends a delivery
 * status notification (RFC 3464) to the job's return path. See docs/outbound.md.
 */

export interface OutboundMessage {
  /** Envelope sender (return path) of this copy; '' (the null sender) for a bounce or notice that must not bounce. */
  mailFrom: string;
  /** One recipient per job: each has its own retry schedule, outcome and bounce. */
  to: string;
  /** The exact bytes to send (CRLF line ends). */
  message: Uint8Array;
  /** What this copy is, for logs and the bounce text, e.g. { kind: 'list-post', list }. Never content. */
  origin?: Record<string, string>;
}

/**
 * Jobs written to disk but not yet visible to the worker: the caller commits them once the
 * rest of its transaction is durable. Jobs never committed are deleted after about an hour.
 */
export interface PreparedBatch {
  ids: string[];
  /** Makes the jobs deliverable (an atomic rename per job); throws if they were aborted or swept. */
  commit(): Promise<void>;
  /** Deletes the jobs; nothing is sent. */
  abort(): Promise<void>;
}

export interface OutboundQueue {
  /** Durably queues and commits the messages; resolves with their job ids. */
  enqueue(messages: OutboundMessage[]): Promise<string[]>;
  /** Durably writes the messages without committing them (two-phase, see PreparedBatch). */
  prepare(messages: OutboundMessage[]): Promise<PreparedBatch>;
  /** Jobs waiting (committed, not yet delivered or bounced). */
  size(): Promise<number>;
  /** Stops the worker; a delivery in flight finishes or is retried after the next start. */
  close(): Promise<void>;
}
