/**
 * The worker thread that encrypts messages for a group while the LMTP client sends them
 * (encrypt-pool.ts starts it): the recrypt core's `streamMessage`, run off the event loop,
 * its output handed back in batches as the main thread asks for them (credits), so the
 * store's pace still sets the encryption's and only a few batches per copy are in flight.
 * A worker makes several copies at once (the pool bounds how many), so that it encrypts
 * one while another waits for its store.
 */
import { parentPort } from 'node:worker_threads';
import { streamMessage, type WrapOptions } from '../../recrypt/index.js';
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
  /** One more batch may be sent. */
  | { kind: 'more'; id: number }
  /** The copy was abandoned: stop. */
  | { kind: 'cancel'; id: number };

export type WorkerMessage =
  | { kind: 'head'; id: number; byteLength: number; head: Uint8Array }
  | { kind: 'piece'; id: number; bytes: Uint8Array }
  | { kind: 'end'; id: number }
  | { kind: 'failed'; id: number; error: string };

/** Pieces are joined into batches of about this size: one message to the main thread each. */
export const BATCH_BYTES = 256 * 1024;
/** Batches sent before the main thread asked for more: 1 MiB ahead of the store. */
export const INITIAL_CREDIT = 4;

const port = parentPort!;
lowerWorkerThreadPriority();
const jobs = new Map<number, { pieces: Iterator<Uint8Array>; credit: number }>();

function fail(id: number, error: unknown): void {
  jobs.delete(id);
  port.postMessage({
    kind: 'failed',
    id,
    error: String((error as Error)?.message ?? error).slice(0, 200),
  } satisfies WorkerMessage);
}

/** Sends a copy's batches while it has credit; the last one is followed by 'end'. */
function pump(id: number): void {
  for (let job = jobs.get(id); job !== undefined && job.credit > 0; job = jobs.get(id)) {
    const { pieces } = job;
    const batch: Uint8Array[] = [];
    let size = 0;
    let done = false;
    try {
      while (size < BATCH_BYTES) {
        const next = pieces.next();
        if (next.done === true) {
          done = true;
          break;
        }
        batch.push(next.value);
        size += next.value.byteLength;
      }
    } catch (error) {
      fail(id, error);
      return;
    }
    if (size > 0) {
      // A buffer of its own, so that it can be transferred rather than copied.
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const piece of batch) {
        bytes.set(piece, at);
        at += piece.byteLength;
      }
      port.postMessage({ kind: 'piece', id, bytes } satisfies WorkerMessage, [bytes.buffer]);
      job.credit -= 1;
    }
    if (done) {
      jobs.delete(id);
      port.postMessage({ kind: 'end', id } satisfies WorkerMessage);
    }
  }
}

port.on('message', (message: MainMessage) => {
  if (message.kind === 'job') {
    const { id, message: bytes, certificate, options } = message.job;
    try {
      const stream = streamMessage(bytes, certificate, options);
      jobs.set(id, { pieces: stream.body()[Symbol.iterator](), credit: INITIAL_CREDIT });
      port.postMessage({
        kind: 'head',
        id,
        byteLength: stream.byteLength,
        head: stream.head,
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
      job.credit += 1;
      pump(message.id);
    }
  }
});
