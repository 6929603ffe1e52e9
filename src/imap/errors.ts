/**
 * Errors that carry the IMAP reply they become. One place (session.ts) turns them into
 * `NO [code] text`; the client sees generic text, the log gets the detail.
 */
export type ImapResponseCode =
  'UNAVAILABLE' | 'AUTHENTICATIONFAILED' | 'PRIVACYREQUIRED' | 'CANNOT';

export class ImapProxyError extends Error {
  override readonly name = 'ImapProxyError';
  constructor(
    readonly code: ImapResponseCode,
    /** What the client is told; never a secret, never a reason that reveals an account. */
    readonly clientText: string,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ?? clientText, options);
  }
}

/** The key store or the mail store cannot be reached: `NO [UNAVAILABLE]`. */
export class UnavailableError extends ImapProxyError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', 'Service temporarily unavailable', detail, options);
  }
}
