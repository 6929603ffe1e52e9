/** Types shared by the transform's files (the hot path, see transform.ts). */

/** Replace `bytes.length` bytes at `offset` (in the coordinates of the planned input). */
export interface Edit {
  offset: number;
  bytes: Uint8Array;
}

/** What a non-recryptable input is, for logs and metrics (never an error). */
export type UnchangedReason =
  | 'not-smime' // a message that is not application/pkcs7-mime enveloped data in base64/binary
  | 'not-base64' // the body is not base64
  | 'not-envelope' // not CMS (Auth)EnvelopedData
  | 'malformed' // broken DER, bad lengths, too deep, indefinite where DER is required
  | 'truncated' // the (complete) input ends inside the CMS prefix
  | 'too-large' // header block or CMS prefix beyond the bounds the transform reads
  | 'no-key' // no recipient info names a group this device holds a key for
  | 'invalid-point' // an originator point off P-256, the identity, or another curve's
  | 'unsupported-point' // compressed/odd-length originator key, or not an EC key
  | 'id-length-mismatch'; // the device id and the group id differ in length

/** The plan for one input: edits to apply, a reason to leave it alone, or a request for more. */
export type RecryptPlan =
  | { kind: 'edits'; edits: Edit[]; /** recipient infos recrypted */ recrypted: number }
  | { kind: 'unchanged'; reason: UnchangedReason; detail?: string }
  | { kind: 'need-more'; /** input bytes (from offset 0) needed to decide */ atLeast: number };

/** How the bytes handed to the transform are framed. */
export type RecryptForm = 'der' | 'base64' | 'message';
