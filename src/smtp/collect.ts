/**
 * Reads DATA into one buffer that has room in front for the trace headers, so the
 * message exists in memory once: `storage[head, head + length)`, with `head` bytes free
 * before it. When the client declared SIZE (RFC 1870; MTAs do) the buffer is allocated
 * up front and chunks are copied in as they arrive; otherwise chunks are kept and copied
 * once at the end. Past `maxSize` the rest is drained and dropped, so an oversized
 * message costs at most `maxSize` bytes.
 */
import type { Readable } from 'node:stream';

/** Room for Received + Received-SPF + Authentication-Results; more falls back to a copy. */
export const TRACE_HEADROOM = 16 * 1024;

export interface CollectedMessage {
  storage: Buffer;
  /** Where the message starts; the bytes before it are free. */
  head: number;
  length: number;
  sizeExceeded: boolean;
}

export async function collectMessage(
  stream: Readable,
  maxSize: number,
  declaredSize?: number,
): Promise<CollectedMessage> {
  const preallocate =
    declaredSize !== undefined &&
    Number.isSafeInteger(declaredSize) &&
    declaredSize > 0 &&
    declaredSize <= maxSize;
  let storage = preallocate ? Buffer.allocUnsafe(TRACE_HEADROOM + declaredSize) : Buffer.alloc(0);
  let filled = TRACE_HEADROOM;
  // Chunks that did not fit (no SIZE, or a client that sent more than it declared).
  let chunks: Buffer[] | undefined = preallocate ? undefined : [];
  let length = 0;
  let sizeExceeded = false;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    if (sizeExceeded) continue;
    if (length + buffer.length > maxSize) {
      sizeExceeded = true;
      chunks = undefined;
      storage = Buffer.alloc(0);
      continue;
    }
    length += buffer.length;
    if (chunks === undefined && filled + buffer.length <= storage.length) {
      buffer.copy(storage, filled);
      filled += buffer.length;
      continue;
    }
    if (chunks === undefined) chunks = [storage.subarray(TRACE_HEADROOM, filled)];
    chunks.push(buffer);
  }
  if (sizeExceeded) return { storage: Buffer.alloc(0), head: 0, length, sizeExceeded };
  if (chunks !== undefined) {
    storage = Buffer.allocUnsafe(TRACE_HEADROOM + length);
    let at = TRACE_HEADROOM;
    for (const chunk of chunks) at += chunk.copy(storage, at);
  }
  return { storage, head: TRACE_HEADROOM, length, sizeExceeded: false };
}

/** The message with `prefix` in front of it, using the headroom (a copy only if it does not fit). */
export function withPrefix(collected: CollectedMessage, prefix: Buffer): Buffer {
  const { storage, head, length } = collected;
  if (prefix.length <= head) {
    prefix.copy(storage, head - prefix.length);
    return storage.subarray(head - prefix.length, head + length);
  }
  return Buffer.concat([prefix, storage.subarray(head, head + length)]);
}
