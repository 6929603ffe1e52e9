/**
 * "The server holds no secret", made concrete: gather everything a gateway stores (every
 * file under its data directory, its config, every row and value of its key store),
 * pull out every value that could be a P-256 scalar, and try each as the key of a stored
 * or recrypted message. Candidates from each blob:
 * - the blob itself when it is 32 bytes, and every 32-byte window at a 32-byte aligned
 *   offset (every offset for blobs up to 1 KiB: certificates, wrapped keys, tokens);
 * - the content of every 32/33-byte primitive in a DER structure found in it;
 * - the same again for every base64, base64url and hex run in its text (two levels deep,
 *   so PEM, JSON fields and hex columns are all decoded).
 * Each candidate is reduced mod n (0 skipped), deduplicated, then tried by decryptEnvelope.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CURVE_ORDER, decryptEnvelope, type RecipientId } from '../../src/recrypt/index.js';

const SMALL_BLOB = 1024;

function derCandidates(bytes: Uint8Array, out: Set<string>, depth = 0): void {
  let offset = 0;
  while (offset + 2 <= bytes.length && depth < 12) {
    const tag = bytes[offset]!;
    let length = bytes[offset + 1]!;
    let header = 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 3 || offset + 2 + count > bytes.length) return;
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i]!;
      header += count;
    }
    const start = offset + header;
    const end = start + length;
    if (end > bytes.length) return;
    const content = bytes.subarray(start, end);
    if ((tag & 0x20) !== 0) derCandidates(content, out, depth + 1);
    else {
      if (content.length === 32) out.add(Buffer.from(content).toString('hex'));
      if (content.length === 33) out.add(Buffer.from(content.subarray(1)).toString('hex'));
      // A BIT STRING or OCTET STRING may wrap DER (SPKI, PKCS#8 ECPrivateKey).
      if ((tag === 0x03 || tag === 0x04) && content.length > 2)
        derCandidates(content.subarray(tag === 0x03 ? 1 : 0), out, depth + 1);
    }
    offset = end;
  }
}

function textRuns(bytes: Uint8Array): Uint8Array[] {
  const text = Buffer.from(bytes).toString('latin1');
  const decoded: Uint8Array[] = [];
  for (const m of text.matchAll(/[0-9a-fA-F]{64,}/g))
    decoded.push(Buffer.from(m[0].length % 2 ? m[0].slice(1) : m[0], 'hex'));
  // PEM bodies span lines: join them before decoding.
  const joined = text.replace(/\r?\n(?=[A-Za-z0-9+/=])/g, '');
  for (const m of joined.matchAll(/[A-Za-z0-9+/]{40,}={0,2}/g))
    decoded.push(Buffer.from(m[0], 'base64'));
  for (const m of text.matchAll(/[A-Za-z0-9_-]{40,}/g))
    decoded.push(Buffer.from(m[0], 'base64url'));
  return decoded;
}

/** Every 32-byte value (as hex) a blob could be hiding, by the rules above. */
export function scalarCandidates(
  blob: Uint8Array,
  out = new Set<string>(),
  depth = 0,
): Set<string> {
  const hex = (a: number) => Buffer.from(blob.subarray(a, a + 32)).toString('hex');
  if (blob.length === 32) out.add(hex(0));
  const step = blob.length <= SMALL_BLOB ? 1 : 32;
  for (let at = 0; at + 32 <= blob.length; at += step) out.add(hex(at));
  derCandidates(blob, out);
  if (depth < 2) for (const decoded of textRuns(blob)) scalarCandidates(decoded, out, depth + 1);
  return out;
}

/** Every regular file under `dir`, recursively, with its bytes. */
export function filesUnder(dir: string): Array<{ path: string; bytes: Uint8Array }> {
  const found: Array<{ path: string; bytes: Uint8Array }> = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isDirectory()) found.push(...filesUnder(path));
    else if (stat.isFile()) found.push({ path, bytes: new Uint8Array(readFileSync(path)) });
  }
  return found;
}

export interface Target {
  what: string;
  /** DER of the CMS envelope. */
  der: Uint8Array;
  recipientId: RecipientId;
}

/** The candidates (hex) that decrypt any target; empty is what "holds no secret" means. */
export function keysThatDecrypt(candidates: Iterable<string>, targets: Target[]): string[] {
  const scalars = new Set<bigint>();
  for (const hex of candidates) {
    const k = BigInt(`0x${hex}`) % CURVE_ORDER;
    if (k !== 0n) scalars.add(k);
  }
  const working: string[] = [];
  for (const secret of scalars) {
    for (const target of targets) {
      try {
        decryptEnvelope(target.der, { secret, recipientId: target.recipientId });
        working.push(`${target.what}: ${secret.toString(16)}`);
      } catch {
        // Expected: this value is not the key.
      }
    }
  }
  return working;
}
