/**
 * One error type carrying an SMTP reply: code, enhanced status code (RFC 3463) and the
 * generic text the client sees. Every hook fails with one of these; logs get the detail
 * separately, the client never does (errors carry their protocol status).
 */
export class SmtpReply extends Error {
  override readonly name = 'SmtpReply';
  /** smtp-server sends `responseCode` and `message`; `message` starts with the enhanced code. */
  readonly responseCode: number;
  constructor(
    code: number,
    readonly enhancedCode: string,
    text: string,
  ) {
    super(`${enhancedCode} ${text}`);
    this.responseCode = code;
  }
}

export const replies = {
  unknownUser: () => new SmtpReply(550, '5.1.1', 'No such user here'),
  /** docs/configuration.md `smtp.pendingRecipientGrace`: retry while the owner may still enrol… */
  notEnrolledYet: () =>
    new SmtpReply(
      450,
      '4.2.1',
      'Mailbox not set up yet (owner enrolment pending), try again later',
    ),
  /** …and a permanent answer once that time is over, so senders are told, not left retrying. */
  neverEnrolled: () =>
    new SmtpReply(550, '5.1.1', 'Mailbox was never set up (owner enrolment did not happen)'),
  relayDenied: () => new SmtpReply(550, '5.7.1', 'Relaying denied: not a domain served here'),
  directoryUnavailable: () =>
    new SmtpReply(451, '4.3.0', 'Temporary failure looking up the recipient, try again later'),
  /** Encryption failed, or anything unexpected: the generic text, detail only in logs. */
  localError: () => new SmtpReply(451, '4.3.0', 'Temporary local error, try again later'),
  storeUnavailable: () =>
    new SmtpReply(451, '4.3.0', 'Temporary failure storing the message, try again later'),
  shuttingDown: () => new SmtpReply(421, '4.3.2', 'Service shutting down, try again later'),
  badAddress: () => new SmtpReply(553, '5.1.3', 'Malformed address'),
  unknownParameter: () => new SmtpReply(555, '5.5.4', 'Parameter not recognized'),
  messageTooBig: () =>
    new SmtpReply(552, '5.3.4', 'Message exceeds the fixed maximum message size'),
  /** The header caps (header-limits.ts): permanent, the same message will never pass. */
  headerTooBig: (bytes: number) =>
    new SmtpReply(552, '5.3.4', `Message header section exceeds ${bytes} bytes`),
  headerTooManyLines: (lines: number) =>
    new SmtpReply(554, '5.6.0', `Message header section has more than ${lines} lines`),
  headerFieldTooLong: (bytes: number) =>
    new SmtpReply(554, '5.6.0', `A header field (with its folded lines) exceeds ${bytes} bytes`),
  tooManyFromAddress: () =>
    new SmtpReply(421, '4.7.0', 'Too many connections from your address, try again later'),
} as const;

/** Matches a reply text that already starts with an enhanced status code. */
export const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
