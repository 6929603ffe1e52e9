/**
 * The worker thread that encrypts a message for a group while the LMTP client sends it
 * (encrypt-pool.ts starts it): the recrypt core's `streamMessage`, run off the event loop,
 * its output handed back in batches as the main thread asks for them (credits), so the
 * store's pace still sets the encryption's and only a few batches are in flight.
 */
import { parentPort } from 'node:worker_threads';
import { streamMessage, type WrapOptions } from '../../recrypt/index.js';

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
/** Batches sent before the main thread asked for more. */
export const INITIAL_CREDIT = 2;

const port = parentPort!;
let current: { id: number; pieces: Iterator<Uint8Array>; credit: number } | undefined;

function fail(id: number, error: unknown): void {
  current = undefined;
  port.postMessage({
    kind: 'failed',
    id,
    error: String((error as Error)?.message ?? error).slice(0, 200),
  } satisfies WorkerMessage);
}

/** Sends batches while there is credit; the last one is followed by 'end'. */
function pump(): void {
  while (current !== undefined && current.credit > 0) {
    const { id, pieces } = current;
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
      current.credit -= 1;
    }
    if (done) {
      current = undefined;
      port.postMessage({ kind: 'end', id } satisfies WorkerMessage);
    }
  }
}

port.on('message', (message: MainMessage) => {
  if (message.kind === 'job') {
    const { id, message: bytes, certificate, options } = message.job;
    try {
      const stream = streamMessage(bytes, certificate, options);
      current = { id, pieces: stream.body()[Symbol.iterator](), credit: INITIAL_CREDIT };
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
    pump();
  } else if (current?.id === message.id) {
    if (message.kind === 'cancel') current = undefined;
    else {
      current.credit += 1;
      pump();
    }
  }
});
