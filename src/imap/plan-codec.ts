/**
 * The byte form of a settled recrypt plan in the persistent point cache
 * (point-cache.ts), and the fingerprint of the keys a plan was made with. A plan holds
 * public data only: the recrypted originator points E′ and the device's recipient
 * identifier, at their offsets (docs/design.md §2).
 *
 * Decoding is strict and bounded: anything that is not exactly what `encodePlan` writes
 * decodes to null, so a damaged entry is recomputed, never served.
 */
import { createHash } from 'node:crypto';
import type { SettledPlan } from './plan-cache.js';
import type { DeviceRecryptKeys } from '../recrypt/types.js';

/** More edits than a plan can have (two per KeyAgreeRecipientInfo of ~200 recipients). */
const MAX_EDITS = 512;
const MAX_EDIT_BYTES = 4096;
const MAX_REASON = 256;
const EDITS = 1;
const UNCHANGED = 2;

export function encodePlan(plan: SettledPlan): Buffer {
  if (plan.kind === 'unchanged') {
    const reason = Buffer.from(plan.reason.slice(0, MAX_REASON), 'utf8');
    return Buffer.concat([Buffer.of(UNCHANGED), reason]);
  }
  // One allocation: a buffer per edit and a concat cost more than the rest of a first fetch's
  // point-cache write (bench/proxy.bench.ts's CPU profile).
  let size = 3;
  for (const edit of plan.edits) size += 6 + edit.bytes.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = EDITS;
  out.writeUInt16BE(plan.edits.length, 1);
  let pos = 3;
  for (const edit of plan.edits) {
    out.writeUInt32BE(edit.offset, pos);
    out.writeUInt16BE(edit.bytes.length, pos + 4);
    out.set(edit.bytes, pos + 6);
    pos += 6 + edit.bytes.length;
  }
  return out;
}

export function decodePlan(bytes: Uint8Array): SettledPlan | null {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (data.length < 1) return null;
  if (data[0] === UNCHANGED) {
    if (data.length - 1 > MAX_REASON * 4) return null;
    return { kind: 'unchanged', reason: data.subarray(1).toString('utf8') };
  }
  if (data[0] !== EDITS || data.length < 3) return null;
  const count = data.readUInt16BE(1);
  if (count === 0 || count > MAX_EDITS) return null;
  const edits: { offset: number; bytes: Uint8Array }[] = [];
  let pos = 3;
  let last = -1;
  for (let i = 0; i < count; i++) {
    if (pos + 6 > data.length) return null;
    const offset = data.readUInt32BE(pos);
    const length = data.readUInt16BE(pos + 4);
    pos += 6;
    // Edits are sorted and never overlap (transform.ts); anything else is damage.
    if (length === 0 || length > MAX_EDIT_BYTES || offset <= last || pos + length > data.length)
      return null;
    // A view: the caller's buffer is its own (a fresh row), nothing else writes to it.
    edits.push({ offset, bytes: new Uint8Array(data.buffer, data.byteOffset + pos, length) });
    last = offset + length - 1;
    pos += length;
  }
  return pos === data.length ? { kind: 'edits', edits } : null;
}

/**
 * A digest of everything a device's plans depend on besides the message: its recipient
 * identifier, the encoding its client reads, and every recryption key it holds. A plan
 * stored under another fingerprint (a rotation re-keyed the device, a list key came or
 * went) is not served. One-way and domain-separated: the keys cannot be recovered from it.
 */
export function keysFingerprint(keys: DeviceRecryptKeys): Buffer {
  const hash = createHash('sha256');
  hash.update('recrypt-gateway point cache v1\u0000');
  hash.update(keys.deviceId);
  hash.update(`\u0000${keys.wrapEncoding}\u0000`);
  for (const group of [...keys.keys.keys()].sort()) {
    hash.update(`${group}=${keys.keys.get(group)!.toString(16)}\u0000`);
  }
  return hash.digest().subarray(0, 16);
}

/**
 * `keysFingerprint` for a live key map (the directory refreshes it in place): recomputed
 * only when the map's contents changed since the last call.
 */
export function liveFingerprint(keys: DeviceRecryptKeys): () => Buffer {
  let seen: Array<[string, bigint]> = [];
  let value: Buffer | null = null;
  return () => {
    let same = value !== null && seen.length === keys.keys.size;
    if (same) {
      let i = 0;
      for (const [group, rk] of keys.keys) {
        const [g, k] = seen[i++]!;
        if (g !== group || k !== rk) {
          same = false;
          break;
        }
      }
    }
    if (!same || value === null) {
      seen = [...keys.keys.entries()];
      value = keysFingerprint(keys);
    }
    return value;
  };
}
