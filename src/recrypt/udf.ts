/**
 * Uniform Data Fingerprints, content-digest type (draft-hallambaker-mesh-udf-13 §3, §5.1).
 *
 *   CDV  = H(data)                              H = SHA-2-512 ('M…') or SHA-3-512 ('K…')
 *   TCDV = H(UTF-8(content type) ‖ ':' ‖ CDV)
 *   BDS  = type id ‖ TCDV                       type id from H and the compression level
 *   text = Base32 (RFC 4648, no padding) of BDS, cut to whole 20-bit groups of 4
 *          characters, joined with '-'.
 *
 * Where the draft's prose and its test vectors disagree, this follows the vectors (and
 * the reference implementations that reproduce them):
 *  - §5.1.3 says the compression level comes from trailing zero bits "in the first 8 bytes"
 *    and §5.1.4 that the BDS starts "at the 9th octet". The §5.1.8 vector instead counts
 *    the trailing zero bits at the END of the 64-byte TCDV (…90 A0 00 00: 21 zero bits →
 *    level 20, type 0x61) and its BDS is type id ‖ TCDV from the first octet.
 *  - Compression changes only the type identifier: the §5.1.8 value is presented with as
 *    many characters as an uncompressed one (§3.4.1's shorter presentation is not applied).
 *  - "The 125 bit fingerprint value" is 7 groups = 140 bits including the type byte: the
 *    precision is rounded UP to a multiple of 20 bits and counts the type byte.
 */
import { createHash } from 'node:crypto';
import { RecryptError } from './errors.js';

export type UdfDigest = 'sha2-512' | 'sha3-512';

/** The precision the draft's examples use ("125 bits" → 7 groups, 140 bits). */
export const DEFAULT_UDF_BITS = 125;

/**
 * The content type a public key (DER SubjectPublicKeyInfo) is fingerprinted as.
 * §5.3.1 names the media type `application/pkix-keyinfo`, but the draft's only computed
 * key fingerprint (§4.2: OIDInfo DER → MD2N-37QO-…) uses `PKIXKey`, the constant of the
 * reference implementation; the vector wins here too, so that Mesh tools compute the
 * same fingerprint for the same key.
 */
export const KEY_CONTENT_TYPE = 'PKIXKey';

/**
 * Precision of `keyFingerprint`: §5.3.1 asks 200 bits for anything that identifies a
 * trust anchor, and an owner CA is one. 200 bits → 10 groups → 49 characters (dashes
 * included) for every key, since compression changes only the type id (all 'M…').
 */
export const KEY_FINGERPRINT_BITS = 200;

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TCDV_LENGTH = 64;
/** The whole BDS: type byte plus a 512-bit digest. */
const MAX_BITS = (1 + TCDV_LENGTH) * 8;

/** Type identifiers (§3.2) by digest, indexed by compression level 0…4. */
const TYPE_IDS: Record<UdfDigest, readonly number[]> = {
  'sha2-512': [96, 97, 98, 99, 100],
  'sha3-512': [80, 81, 82, 83, 84],
};

const NODE_HASH: Record<UdfDigest, string> = { 'sha2-512': 'sha512', 'sha3-512': 'sha3-512' };

function digest(algorithm: UdfDigest, ...parts: Uint8Array[]): Uint8Array {
  const hash = createHash(NODE_HASH[algorithm]);
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** RFC 4648 Base32 without padding; a trailing partial quintet is zero-filled. */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** Number of trailing zero bits of a byte string (least significant bits of the last byte first). */
function trailingZeroBits(bytes: Uint8Array): number {
  let count = 0;
  for (let i = bytes.length - 1; i >= 0; i--) {
    const byte = bytes[i]!;
    if (byte === 0) {
      count += 8;
      continue;
    }
    let b = byte;
    while ((b & 1) === 0) {
      count += 1;
      b >>= 1;
    }
    break;
  }
  return count;
}

/** §5.1.3 compression level 0…4 (0, 20, 30, 40, 50 trailing zero bits), counted as the vectors do. */
export function compressionLevel(tcdv: Uint8Array): number {
  const zeros = trailingZeroBits(tcdv);
  if (zeros >= 50) return 4;
  if (zeros >= 40) return 3;
  if (zeros >= 30) return 2;
  if (zeros >= 20) return 1;
  return 0;
}

function assertContent(data: unknown, contentType: unknown): void {
  if (!(data instanceof Uint8Array) && typeof data !== 'string') {
    throw new RecryptError('invalid-argument', 'data must be a Uint8Array or a string');
  }
  if (typeof contentType !== 'string' || contentType.length === 0) {
    throw new RecryptError('invalid-argument', 'contentType must be a non-empty string');
  }
}

function assertDigest(algorithm: unknown): asserts algorithm is UdfDigest {
  if (algorithm !== 'sha2-512' && algorithm !== 'sha3-512') {
    throw new RecryptError('invalid-argument', `algorithm must be 'sha2-512' or 'sha3-512'`);
  }
}

/** The full binary UDF (type id ‖ TCDV, 65 bytes) of `data` read as `contentType`. */
export function udfBinary(
  data: Uint8Array | string,
  contentType: string,
  algorithm: UdfDigest = 'sha2-512',
): Uint8Array {
  assertContent(data, contentType);
  assertDigest(algorithm);
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const cdv = digest(algorithm, bytes);
  const tcdv = digest(algorithm, new TextEncoder().encode(`${contentType}:`), cdv);
  const out = new Uint8Array(1 + TCDV_LENGTH);
  out[0] = TYPE_IDS[algorithm][compressionLevel(tcdv)]!;
  out.set(tcdv, 1);
  return out;
}

/** Base32 presentation of a binary UDF at `bits` precision (rounded up to 20-bit groups). */
export function udfPresentation(binary: Uint8Array, bits: number = DEFAULT_UDF_BITS): string {
  if (!(binary instanceof Uint8Array) || binary.length === 0) {
    throw new RecryptError('invalid-argument', 'binary must be a non-empty Uint8Array');
  }
  if (!Number.isInteger(bits) || bits < 1 || bits > binary.length * 8) {
    throw new RecryptError(
      'invalid-argument',
      `bits must be an integer in [1, ${binary.length * 8}], got ${String(bits)}`,
    );
  }
  const characters = Math.ceil(bits / 20) * 4;
  const text = base32Encode(binary).slice(0, characters);
  return (text.match(/.{1,4}/g) ?? []).join('-');
}

/** The content-digest UDF of `data` read as `contentType`, e.g. `MDDK-7N6A-…`. */
export function udfContentDigest(
  data: Uint8Array | string,
  contentType: string,
  options: { algorithm?: UdfDigest; bits?: number } = {},
): string {
  const bits = options.bits ?? DEFAULT_UDF_BITS;
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_BITS) {
    throw new RecryptError('invalid-argument', `bits must be an integer in [1, ${MAX_BITS}]`);
  }
  return udfPresentation(udfBinary(data, contentType, options.algorithm ?? 'sha2-512'), bits);
}

/**
 * The fingerprint of a public key: SHA-2-512 content digest of its DER
 * SubjectPublicKeyInfo as KEY_CONTENT_TYPE, at KEY_FINGERPRINT_BITS.
 * Always 49 characters: it names the owner CA, whose DN length must never vary.
 */
export function keyFingerprint(spkiDer: Uint8Array): string {
  if (!(spkiDer instanceof Uint8Array) || spkiDer.length === 0 || spkiDer[0] !== 0x30) {
    throw new RecryptError('invalid-argument', 'spkiDer must be a DER SubjectPublicKeyInfo');
  }
  return udfContentDigest(spkiDer, KEY_CONTENT_TYPE, { bits: KEY_FINGERPRINT_BITS });
}

/** Length of every `keyFingerprint` string. */
export const KEY_FINGERPRINT_LENGTH = (KEY_FINGERPRINT_BITS / 20) * 5 - 1;
