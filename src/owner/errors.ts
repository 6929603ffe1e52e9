/**
 * The owner tool's one error type. Every failure a person can cause or meet (wrong
 * passphrase, corrupt key file, gateway unreachable, a refusal by the gateway) becomes an
 * OwnerError whose message is one line fit to print as it is; the CLI prints it and exits
 * 1. Messages never carry a secret.
 */
export type OwnerErrorCode =
  | 'bad-passphrase'
  | 'corrupt-key-file'
  | 'key-file-missing'
  | 'exists'
  | 'invalid-argument'
  | 'no-secret'
  | 'gateway-unreachable'
  | 'gateway-refused'
  | 'gateway-identity-changed'
  | 'gateway-mismatch'
  | 'io';

export class OwnerError extends Error {
  override readonly name = 'OwnerError';
  constructor(
    readonly code: OwnerErrorCode,
    message: string,
    /** The admin API's HTTP status, when the gateway refused. */
    readonly status?: number,
  ) {
    super(message);
  }
}
