/** Why a recrypt-core function refused its input. */
export type RecryptErrorCode =
  | 'invalid-argument'
  | 'invalid-point'
  | 'invalid-scalar'
  | 'malformed-der'
  | 'unsupported'
  | 'too-large'
  | 'decrypt-failed'
  | 'bad-password'
  | 'no-recipient';

/** The one error type the core throws; `code` says why, the message names the argument. */
export class RecryptError extends Error {
  override readonly name = 'RecryptError';
  constructor(
    readonly code: RecryptErrorCode,
    message: string,
  ) {
    super(message);
  }
}
