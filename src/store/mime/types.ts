/**
 * The parsed shape of a stored message, as the IMAP layer needs it to answer ENVELOPE,
 * BODYSTRUCTURE and BODY[section] without re-reading the message. Every value is plain
 * JSON (no Buffers, no Dates) because the maildir index stores it as JSON.
 *
 * Offsets are byte offsets into the stored message, `end` exclusive.
 */

export interface ByteRange {
  start: number;
  end: number;
}

export interface HeaderParam {
  /** As written in the message (attribute names are case-insensitive; RFC 2231 names kept raw, e.g. `filename*`). */
  name: string;
  /** Unquoted value; RFC 2047/2231 encodings are NOT decoded (IMAP sends them raw). */
  value: string;
}

export interface ContentType {
  /** Lower-case, e.g. `text`. */
  type: string;
  /** Lower-case, e.g. `plain`. */
  subtype: string;
  params: HeaderParam[];
  /** False when the part had no (usable) Content-Type and the RFC 2045/2046 default was applied. */
  explicit: boolean;
}

export interface Disposition {
  /** Lower-case, e.g. `attachment`. */
  type: string;
  params: HeaderParam[];
}

/**
 * One entry of an IMAP address list (RFC 3501 ENVELOPE), already flattened the way
 * IMAP sends groups: a group starts with `{ mailbox: <group name>, host: null }` and
 * ends with all four fields null.
 */
export interface Address {
  name: string | null;
  adl: string | null;
  mailbox: string | null;
  host: string | null;
}

/**
 * RFC 3501 ENVELOPE fields. Strings are the header values unfolded (CRLF before
 * whitespace removed) and trimmed, encoded-words left as they are; `null` when the
 * header is absent. `sender` and `replyTo` already default to `from` as RFC 3501 asks.
 */
export interface Envelope {
  date: string | null;
  subject: string | null;
  from: Address[];
  sender: Address[];
  replyTo: Address[];
  to: Address[];
  cc: Address[];
  bcc: Address[];
  inReplyTo: string | null;
  messageId: string | null;
}

export interface BodyPart {
  /** The part's header block, including the empty line that ends it (if there is one). */
  header: ByteRange;
  /** The part's body (for a multipart: everything after its header, preamble and epilogue included). */
  body: ByteRange;
  contentType: ContentType;
  id: string | null;
  description: string | null;
  /** Content-Transfer-Encoding as written (trimmed), `null` when absent (IMAP then sends "7BIT"). */
  encoding: string | null;
  /** Body size in octets (= body.end - body.start). */
  size: number;
  /** Number of LF characters in the body (what IMAP reports for text/* and message/rfc822). */
  lines: number;
  md5: string | null;
  disposition: Disposition | null;
  /** Content-Language tags, `null` when absent. */
  language: string[] | null;
  location: string | null;
  /** Children of a multipart (empty otherwise). */
  parts: BodyPart[];
  /** For message/rfc822 (parsed whatever its encoding, as Dovecot does): the encapsulated message. */
  message: EncapsulatedMessage | null;
}

export interface EncapsulatedMessage {
  envelope: Envelope;
  /** The inner message: its `header` is the inner message header, its `body` the inner body. */
  root: BodyPart;
}

export interface MessageStructure {
  /** Total size in octets. */
  size: number;
  envelope: Envelope;
  /** The whole message: `header` is the top-level header (BODY[HEADER]), `body` is BODY[TEXT]. */
  root: BodyPart;
}
