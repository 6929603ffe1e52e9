/**
 * Reads DATA into one buffer that has room in front for the trace headers, so the
 * message exists in memory once: `storage[head, head + length)`, with `head` bytes free
 * before it. When the client declared SIZE (RFC 1870; MTAs do) the buffer is allocated
 * up front and chunks are copied in as they arrive; otherwise chunks are kept and copied
 * once at the end. Past `maxSize` the rest is drained and dropped, so an oversized
 * message costs at most `maxSize` bytes. The header section is checked against the header
 * caps as it arrives (header-limits.ts); past one, the rest is drained and dropped too.
 * The storage is a SharedArrayBuffer so that the sender-authentication worker reads the
 * message without a copy on the event loop (auth-pool.ts).
 */
import type { Readable } from 'node:stream';
import { type HeaderLimits, HeaderScanner, type HeaderViolation } from './header-limits.js';

/** Room for Received + Received-SPF + Authentication-Results; more falls back to a copy. */
export const TRACE_HEADROOM = 16 * 1024;

export interface CollectedMessage {
  storage: Buffer;
  /** Where the message starts; the bytes before it are free. */
  head: number;
  length: number;
  sizeExceeded: boolean;
  /** The first header cap the message passed; nothing of it is kept. */
  headerViolation?: HeaderViolation;
}

function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

export async function collectMessage(
  stream: Readable,
  maxSize: number,
  declaredSize?: number,
  headerLimits?: HeaderLimits,
): Promise<CollectedMessage> {
  const scanner = headerLimits === undefined ? undefined : new HeaderScanner(headerLimits);
  const preallocate =
    declaredSize !== undefined &&
    Number.isSafeInteger(declaredSize) &&
    declaredSize > 0 &&
    declaredSize <= maxSize;
  let storage = preallocate ? sharedBuffer(TRACE_HEADROOM + declaredSize) : Buffer.alloc(0);
  let filled = TRACE_HEADROOM;
  // Chunks that did not fit (no SIZE, or a client that sent more than it declared).
  let chunks: Buffer[] | undefined = preallocate ? undefined : [];
  let length = 0;
  let sizeExceeded = false;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    if (sizeExceeded || scanner?.violation !== undefined) continue;
    if (scanner !== undefined && !scanner.done) {
      scanner.push(buffer);
      if (scanner.violation !== undefined) {
        chunks = undefined;
        storage = Buffer.alloc(0);
        continue;
      }
    }
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
  if (scanner?.violation !== undefined)
    return {
      storage: Buffer.alloc(0),
      head: 0,
      length,
      sizeExceeded: false,
      headerViolation: scanner.violation,
    };
  if (chunks !== undefined) {
    storage = sharedBuffer(TRACE_HEADROOM + length);
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
