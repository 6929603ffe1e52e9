/**
 * The largest copy the MX hands to the mail store for a message of `maxMessageBytes`:
 * the S/MIME envelope is base64 in 76-character lines (×4/3 ×78/76 ≈ 1.37) around the
 * message plus its trace and list headers, the CMS structure and the outer header fields.
 * The embedded store's LMTP limit is set from it, so that a message the MX accepted by
 * SIZE is never refused by the store after DATA (a 50 MiB message encrypts to ~68 MiB).
 */
export function storedSizeBound(maxMessageBytes: number): number {
  return Math.ceil((maxMessageBytes + 64 * 1024) * 1.4) + 256 * 1024;
}
