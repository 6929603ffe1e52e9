import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * Small reads on the event loop. A FETCH BODY[] of a whole mailbox reads thousands of
 * small files; through the thread pool each costs an open and a read round trip (two
 * thread hand-offs), which on a busy machine costs more than the read itself. A file in
 * the page cache is read synchronously in microseconds, so reads up to QUICK_READ_MAX
 * that finish a message are done here instead.
 *
 * A synchronous read stalls every session of the process, so reads that are slow one
 * after another (files coming from disk, not the page cache) send all reads back to the
 * thread pool for a while. One slow read alone does not: on a busy machine a cached read
 * is sometimes slow only because the process lost the CPU during it. The gate is
 * process-wide because the event loop is.
 */

/** Largest read done synchronously (bytes). */
export const QUICK_READ_MAX = 64 * 1024;
/** A read slower than this (ms) is likely a disk read (or the process lost the CPU). */
const SLOW_MS = 4;
/** This many slow reads in a row mean the disk: back to the thread pool. */
const SLOW_STREAK = 3;
/** How long (ms) reads stay on the thread pool after a slow streak. */
const BACK_OFF_MS = 1000;

let slowStreak = 0;
let asyncUntil = 0;

/**
 * Quick reads are carved out of shared slabs instead of one ArrayBuffer each: a FETCH
 * BODY[] of 1,000 messages of 20 KB otherwise makes 1,000 separately allocated and
 * finalised backing stores, whose external-memory accounting drives the garbage
 * collector (a third of that FETCH's CPU time). A slab lives as long as any of its
 * reads: the FETCH holds them only until the socket took them; a cache that keeps part
 * of a read copies it (imap/render/cache.ts).
 */
const SLAB_SIZE = 512 * 1024;
let slab = Buffer.allocUnsafeSlow(0);
let slabUsed = 0;

function carve(length: number): Buffer {
  if (length > SLAB_SIZE / 8) return Buffer.allocUnsafeSlow(length);
  if (slabUsed + length > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + length);
  // 8-byte aligned, as Node's own pool keeps its slices
  slabUsed += (length + 7) & ~7;
  return out;
}

/** Whether a read of `length` bytes may be done synchronously now. */
export function quickReadAllowed(length: number): boolean {
  return length <= QUICK_READ_MAX && (asyncUntil === 0 || performance.now() >= asyncUntil);
}

/**
 * `length` bytes at `start` of the file at `path` (fewer if it is shorter), or null when
 * the file does not exist (renamed by a flag change, or removed). Other errors are thrown.
 */
export function quickRead(path: string, start: number, length: number): Uint8Array | null {
  const began = performance.now();
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const out = carve(length);
    let offset = 0;
    while (offset < length) {
      const n = readSync(fd, out, offset, length - offset, start + offset);
      if (n === 0) break;
      offset += n;
    }
    if (offset === length) return out;
    // a short read (the file shrank): leave no stale slab bytes behind the returned view
    out.fill(0, offset);
    return out.subarray(0, offset);
  } finally {
    closeSync(fd);
    const now = performance.now();
    slowStreak = now - began > SLOW_MS ? slowStreak + 1 : 0;
    if (slowStreak >= SLOW_STREAK) {
      slowStreak = 0;
      asyncUntil = now + BACK_OFF_MS;
    }
  }
}
