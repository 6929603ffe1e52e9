import { StoreError } from '../backend.js';

/** A syntax error in a client command: always answered `BAD`. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
}

/** RFC 5530 response codes this server sends. */
export type ResponseCode =
  | 'NONEXISTENT'
  | 'ALREADYEXISTS'
  | 'CANNOT'
  | 'OVERQUOTA'
  | 'SERVERBUG'
  | 'LIMIT'
  | 'TOOBIG'
  | 'AUTHENTICATIONFAILED'
  | 'AUTHORIZATIONFAILED'
  | 'PRIVACYREQUIRED'
  | 'UNAVAILABLE'
  | 'CLIENTBUG'
  | 'TRYCREATE'
  | 'EXPUNGEISSUED'
  | 'BADCHARSET';

/** A reply a handler wants sent instead of `OK`: the one typed error of the protocol layer. */
export class ImapError extends Error {
  override readonly name = 'ImapError';
  constructor(
    readonly status: 'NO' | 'BAD' | 'BYE',
    readonly text: string,
    readonly code?: ResponseCode,
  ) {
    super(text);
  }
}

/**
 * The one place storage errors become IMAP replies. Client text is generic; the detail
 * (which may name paths) stays in the log.
 */
export function toImapError(err: unknown): ImapError | null {
  if (err instanceof ImapError) return err;
  if (err instanceof ParseError) return new ImapError('BAD', err.message);
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'no-such-mailbox':
        return new ImapError('NO', 'Mailbox does not exist', 'NONEXISTENT');
      case 'mailbox-exists':
        return new ImapError('NO', 'Mailbox already exists', 'ALREADYEXISTS');
      case 'invalid-name':
        return new ImapError('NO', 'Invalid mailbox name or operation', 'CANNOT');
      case 'no-such-message':
        return new ImapError('NO', 'Message was expunged', 'EXPUNGEISSUED');
      case 'over-quota':
        return new ImapError('NO', 'Quota exceeded', 'OVERQUOTA');
      case 'too-large':
        return new ImapError('NO', 'Message too large', 'TOOBIG');
      case 'limit':
        return new ImapError('NO', 'Limit reached', 'LIMIT');
      case 'no-such-user':
        return new ImapError('NO', 'Authorization failed', 'AUTHORIZATIONFAILED');
      case 'io-error':
        return new ImapError('NO', 'Internal storage error', 'SERVERBUG');
    }
  }
  return null;
}
