/**
 * The worker thread that encrypts messages for a group while the LMTP client sends them
 * (encrypt-pool.ts starts it): the recrypt core's `streamMessage`, run off the event loop,
 * its output handed back in batches as the main thread asks for them (credits), so the
 * store's pace still sets the encryption's and only a few batches per copy are in flight.
 * A worker makes several copies at once (the pool bounds how many), so that it encrypts
 * one while another waits for its store.
 *
 * The batches are written into slots of one SharedArrayBuffer per copy, handed over by
 * number and given back when the main thread is done with them: the event loop gets no
 * new buffer per batch. A transferred buffer each (68 MB of them for a 50 MB message)
 * added to the main thread's external memory, and every 64 MB of that forces a full
 * garbage collection there, a pause of tens of milliseconds on a busy machine.
 *
 * The same threads compute the recrypted points the proxy keeps at delivery ('points'
 * jobs, docs/design.md §4: about 0.4 ms of CPU per copy and device, the EC multiply
 * and the parse of the CMS prefix), so that work too stays off the event loop and runs
 * below its priority.
 */
import { parentPort } from 'node:worker_threads';
import { streamMessage, type WrapOptions } from '../../recrypt/index.js';
import { computePoints, type PointsJob, type PointsResult } from './delivery-points.js';
import { lowerWorkerThreadPriority } from '../worker-priority.js';

export interface EncryptJob {
  id: number;
  /** The message with its trace headers: a view into the collector's SharedArrayBuffer. */
  message: Uint8Array;
  certificate: Uint8Array;
  options: WrapOptions;
}

export type MainMessage =
  | { kind: 'job'; job: EncryptJob }
  | { kind: 'points'; job: PointsJob }
  /** The main thread is done with this slot: it may hold the next batch. */
  | { kind: 'more'; id: number; slot: number }
  /** The copy was abandoned: stop. */
  | { kind: 'cancel'; id: number };

export type WorkerMessage =
  /** `slots`: SLOTS slots of `slotBytes`, where the batches of this copy are written. */
  | {
      kind: 'head';
      id: number;
      byteLength: number;
      head: Uint8Array;
      slots: SharedArrayBuffer;
      slotBytes: number;
    }
  /** A batch: `length` bytes at `slot` × `slotBytes`. */
  | { kind: 'piece'; id: number; slot: number; length: number }
  | { kind: 'end'; id: number }
  | { kind: 'failed'; id: number; error: string }
  | { kind: 'points'; id: number; results: PointsResult[] }
  | { kind: 'points-failed'; id: number; error: string };

/** Pieces are joined into batches of exactly this size (the last one shorter). */
export const BATCH_BYTES = 256 * 1024;
/** Batches written before the main thread gave a slot back: 1 MiB ahead of the store. */
export const SLOTS = 4;

interface Copy {
  pieces: Iterator<Uint8Array>;
  slots: SharedArrayBuffer;
  /** Slots the main thread gave back (all at first). */
  free: number[];
  /** What is left of a piece that did not fit into the previous batch. */
  rest?: Uint8Array;
}

const port = parentPort!;
lowerWorkerThreadPriority();
const jobs = new Map<number, Copy>();

function fail(id: number, error: unknown): void {
  jobs.delete(id);
  port.postMessage({
    kind: 'failed',
    id,
    error: String((error as Error)?.message ?? error).slice(0, 200),
  } satisfies WorkerMessage);
}

/** Fills `into` from the copy's pieces; returns the bytes written and whether the pieces ended. */
function fill(job: Copy, into: Uint8Array): { size: number; done: boolean } {
  let size = 0;
  while (size < into.byteLength) {
    let piece = job.rest;
    job.rest = undefined;
    if (piece === undefined) {
      const next = job.pieces.next();
      if (next.done === true) return { size, done: true };
      piece = next.value;
    }
    const room = into.byteLength - size;
    if (piece.byteLength > room) {
      job.rest = piece.subarray(room);
      piece = piece.subarray(0, room);
    }
    into.set(piece, size);
    size += piece.byteLength;
  }
  return { size, done: false };
}

/** Writes a copy's batches into its free slots; the last one is followed by 'end'. */
function pump(id: number): void {
  for (let job = jobs.get(id); job !== undefined && job.free.length > 0; job = jobs.get(id)) {
    const slot = job.free.shift()!;
    let filled: { size: number; done: boolean };
    try {
      filled = fill(job, new Uint8Array(job.slots, slot * BATCH_BYTES, BATCH_BYTES));
    } catch (error) {
      fail(id, error);
      return;
    }
    if (filled.size > 0)
      port.postMessage({ kind: 'piece', id, slot, length: filled.size } satisfies WorkerMessage);
    else job.free.unshift(slot);
    if (filled.done) {
      jobs.delete(id);
      port.postMessage({ kind: 'end', id } satisfies WorkerMessage);
    }
  }
}

port.on('message', (message: MainMessage) => {
  if (message.kind === 'points') {
    const { id, prefix, keys } = message.job;
    try {
      port.postMessage({
        kind: 'points',
        id,
        results: computePoints(prefix, keys),
      } satisfies WorkerMessage);
    } catch (error) {
      port.postMessage({
        kind: 'points-failed',
        id,
        error: String((error as Error)?.message ?? error).slice(0, 200),
      } satisfies WorkerMessage);
    }
  } else if (message.kind === 'job') {
    const { id, message: bytes, certificate, options } = message.job;
    try {
      const stream = streamMessage(bytes, certificate, options);
      const slots = new SharedArrayBuffer(SLOTS * BATCH_BYTES);
      jobs.set(id, {
        pieces: stream.body()[Symbol.iterator](),
        slots,
        free: Array.from({ length: SLOTS }, (_, slot) => slot),
      });
      port.postMessage({
        kind: 'head',
        id,
        byteLength: stream.byteLength,
        head: stream.head,
        slots,
        slotBytes: BATCH_BYTES,
      } satisfies WorkerMessage);
    } catch (error) {
      fail(id, error);
      return;
    }
    pump(id);
  } else {
    const job = jobs.get(message.id);
    if (job === undefined) return;
    if (message.kind === 'cancel') jobs.delete(message.id);
    else {
      job.free.push(message.slot);
      pump(message.id);
    }
  }
});
