/**
 * The key store's typed errors. Callers map them to protocol replies in one place:
 * `KeyStoreUnavailableError` → SMTP 451 4.3.0 / IMAP `NO [UNAVAILABLE]`; the others are
 * caller mistakes or races (HTTP 404 / 409 / 401 in the admin API). Messages name the
 * record, never a secret.
 */

export type KeyStoreErrorCode =
  | 'unavailable'
  | 'not-found'
  | 'duplicate'
  | 'token-invalid'
  | 'invalid-argument'
  | 'corrupt'
  | 'stale';

export class KeyStoreError extends Error {
  override readonly name: string = 'KeyStoreError';
  constructor(
    readonly code: KeyStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The backing store cannot be reached now; retry later (SMTP 4xx, IMAP NO [UNAVAILABLE]). */
export class KeyStoreUnavailableError extends KeyStoreError {
  override readonly name = 'KeyStoreUnavailableError';
  constructor(message = 'key store unavailable', options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}

export type RecordKind = 'user' | 'device' | 'token' | 'list' | 'list-member' | 'pairing-request';

export class NotFoundError extends KeyStoreError {
  override readonly name = 'NotFoundError';
  constructor(
    readonly record: RecordKind,
    message: string,
  ) {
    super('not-found', message);
  }
}

/** A user that already exists, a device name already taken, a device identifier already used. */
export class DuplicateError extends KeyStoreError {
  override readonly name = 'DuplicateError';
  constructor(
    readonly what: 'user' | 'device-name' | 'device-id' | 'list',
    message: string,
  ) {
    super('duplicate', message);
  }
}

export type TokenFailure = 'invalid' | 'expired' | 'used';

/** An enrolment token that does not match, has expired, or was already used. */
export class TokenInvalidError extends KeyStoreError {
  override readonly name = 'TokenInvalidError';
  constructor(
    readonly reason: TokenFailure,
    message = `enrolment token ${reason}`,
  ) {
    super('token-invalid', message);
  }
}

/** Bad input at the boundary (malformed address, scalar out of range, empty name). */
export class KeyStoreArgumentError extends KeyStoreError {
  override readonly name = 'KeyStoreArgumentError';
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

/**
 * A change made against a state that is no longer current (a mailbox rotated meanwhile,
 * a device revoked or added since the caller read it): read again and retry (HTTP 409).
 */
export class StaleStateError extends KeyStoreError {
  override readonly name = 'StaleStateError';
  constructor(message: string) {
    super('stale', message);
  }
}
