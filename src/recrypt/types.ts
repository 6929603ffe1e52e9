/** A scalar mod n of P-256, in [1, n-1]. */
export type Scalar = bigint;

/** DER of a CMS IssuerAndSerialNumber: how a recipient is named in a KeyAgreeRecipientInfo. */
export type RecipientId = Uint8Array;

/**
 * How a KeyAgreeRecipientInfo encodes the key-wrap AlgorithmIdentifier inside
 * keyEncryptionAlgorithm. The encoding enters the KDF's SharedInfo, so one wrapped key
 * serves only clients that rebuild SharedInfo the same way (docs/design.md §3).
 */
export type WrapEncoding = 'absent' | 'null';

/** Which client family a device uses; decides the KeyAgreeRecipientInfo it is given. */
export type ClientKind = 'standard' | 'outlook';

export const WRAP_ENCODING_OF_CLIENT: Record<ClientKind, WrapEncoding> = {
  standard: 'absent',
  outlook: 'null',
};

/** Everything the transform needs to recrypt for one device. Holds no secret that reads mail. */
export interface DeviceRecryptKeys {
  /** The device certificate's IssuerAndSerialNumber (same length as every group's). */
  deviceId: RecipientId;
  /** Which encoding the device's client reads. */
  wrapEncoding: WrapEncoding;
  /**
   * Recryption keys this device holds, keyed by the group's RecipientId in lowercase hex.
   * For list mail the caller composes list→member and member→device keys first.
   */
  keys: ReadonlyMap<string, Scalar>;
}
