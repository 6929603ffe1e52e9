/**
 * Why a profile was refused. One error type for the whole part: `code` says what failed,
 * the message names the field or check (never a key or a secret).
 */
export type ProfileErrorCode =
  /** Not a compact JWS, bad base64url, bad JSON, or the payload fails the schema. */
  | 'malformed'
  /** A JOSE header this verifier does not accept: `alg` other than ES256, a `crit`, a wrong `typ`. */
  | 'unsupported'
  /** The ES256 signature does not verify under the header's key. */
  | 'bad-signature'
  /** The signing key's UDF differs from the profile's `udf` (or from the one the caller expected). */
  | 'udf-mismatch'
  /** The profile is for another address than the one asked for. */
  | 'address-mismatch'
  /** `expires` has passed, or `issued` lies in the future. */
  | 'expired'
  /** A connection's key is not a certificate issued by the profile's owner key. */
  | 'certificate-mismatch'
  /** An argument handed to a profile function is unusable (a bad address, a bad key). */
  | 'invalid-argument';

export class ProfileError extends Error {
  override readonly name = 'ProfileError';
  constructor(
    readonly code: ProfileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why fetching a profile failed before verification could start. */
export type ProfileFetchErrorCode =
  'not-found' | 'http-status' | 'network' | 'too-large' | 'timeout';

export class ProfileFetchError extends Error {
  override readonly name = 'ProfileFetchError';
  constructor(
    readonly code: ProfileFetchErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}
