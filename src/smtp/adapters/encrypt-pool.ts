/**
 * Encryption on arrival in worker threads, so that one gateway uses more than one core
 * for its largest CPU item on the MX (AES and base64 of every message, per recipient
 * group) and a 50 MB message is not encrypted on the event loop that serves SMTP, IMAP
 * and HTTPS (config `workers`, docs/configuration.md). The MX keeps its order of work:
 * a streamed copy is still pulled by the LMTP client a batch at a time, and the worker
 * encrypts ahead by at most SLOTS batches (encrypt-worker.ts), so the store's pace sets
 * the encryption's and the message is held once (the collector's SharedArrayBuffer, which
 * the worker reads without a copy). The batches come in slots of a SharedArrayBuffer per
 * copy, so the event loop allocates nothing per batch (no garbage-collection pauses from
 * them); a slot is given back when the next batch is pulled, so a batch is valid until
 * then (the LMTP client has written it to its socket by that time).
 *
 * Fail closed as before: a worker that fails or exits mid-copy makes the copy's body
 * throw, the LMTP client abandons it before its end of data, and the MX answers 451.
 * `size` workers, each making up to COPIES_PER_WORKER copies at once (one encrypts while
 * another waits for its store); more copies wait their turn. Whole copies (list posts)
 * are made the same way and put together on the event loop; only the envelope check
 * (a look at the first bytes) stays with the inner encryptor.
 *
 * The same threads compute the proxy's points at delivery (`computePoints`,
 * delivery-points.ts): short jobs, sent to the least busy thread, answered in order with
 * its batches.
 */
import type { Worker } from 'node:worker_threads';
import type { WrapOptions } from '../../recrypt/index.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
import type { MessageEncryptor, StreamedMessage } from '../ports.js';
import { startPoolWorker } from '../pool-worker.js';
import type { PointsResult } from './delivery-points.js';
// Types only: the worker's module runs its thread's set-up when it is loaded.
import type { EncryptJob, MainMessage, WorkerMessage } from './encrypt-worker.js';

/** Copies one worker makes at once; each holds at most SLOTS batches ahead. */
export const COPIES_PER_WORKER = 8;

export interface EncryptPoolOptions {
  /** Copies encrypted at once, one worker thread each. */
  size: number;
  wrap?: WrapOptions;
}

interface Job {
  job: EncryptJob;
  slot?: Slot;
  started: (stream: StreamedMessage) => void;
  refused: (error: Error) => void;
  /** Batches written and not pulled yet: slot numbers and lengths in `slots`. */
  pieces: { slot: number; length: number }[];
  /** The copy's batch slots, each `slotBytes` long (from its header section on). */
  slots?: SharedArrayBuffer;
  slotBytes: number;
  /** The slot of the batch the consumer holds (given back when it pulls the next). */
  held?: number;
  /** The header section came: the copy belongs to its consumer, who releases it. */
  headed: boolean;
  ended: boolean;
  failure?: Error;
  wake?: () => void;
  /** The copy's consumer is gone (done, failed or never started): the slot is free. */
  released: boolean;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  /** 'points' jobs sent to this worker and not answered yet. */
  points: Map<
    number,
    { resolve: (results: PointsResult[]) => void; reject: (error: Error) => void }
  >;
}

export class EncryptPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: EncryptPoolOptions) {
    if (!Number.isSafeInteger(options.size) || options.size < 1)
      throw new Error(`encryption pool size must be a positive integer, not ${options.size}`);
  }

  get size(): number {
    return this.options.size;
  }

  /** Starts one worker ahead of the first message. */
  warm(): void {
    if (!this.closed && this.slots.length === 0) this.spawn();
  }

  /** The copy of `message` for the group of `certificate`, encrypted in a worker as it is pulled. */
  stream(message: Uint8Array, certificate: Uint8Array): Promise<StreamedMessage> {
    if (this.closed) return Promise.reject(new Error('encryption pool closed'));
    return new Promise<StreamedMessage>((started, refused) => {
      this.queue.push({
        job: { id: this.nextId++, message, certificate, options: this.options.wrap ?? {} },
        started,
        refused,
        pieces: [],
        slotBytes: 0,
        headed: false,
        ended: false,
        released: false,
      });
      this.dispatch();
    });
  }

  /**
   * The recrypted points of a stored copy for these devices' keys (delivery-points.ts), in
   * a worker thread. Bounded by the caller: it waits for one answer before the next job.
   */
  computePoints(prefix: Uint8Array, keys: DeviceRecryptKeys[]): Promise<PointsResult[]> {
    if (this.closed) return Promise.reject(new Error('encryption pool closed'));
    let slot: Slot | undefined;
    for (const candidate of this.slots)
      if (
        slot === undefined ||
        candidate.jobs.size + candidate.points.size < slot.jobs.size + slot.points.size
      )
        slot = candidate;
    const chosen = slot ?? this.spawn();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      chosen.points.set(id, { resolve, reject });
      chosen.worker.postMessage({
        kind: 'points',
        job: { id, prefix, keys },
      } satisfies MainMessage);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.refused(new Error('encryption pool closed'));
    const slots = this.slots.splice(0);
    for (const slot of slots) this.failPoints(slot, new Error('encryption pool closed'));
    for (const slot of slots)
      for (const job of slot.jobs.values()) this.fail(job, new Error('encryption pool closed'));
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  /** A worker with nothing to do, a new one while below `size`, else the least busy. */
  private pick(): Slot | undefined {
    let least: Slot | undefined;
    for (const slot of this.slots)
      if (least === undefined || slot.jobs.size < least.jobs.size) least = slot;
    if (least !== undefined && least.jobs.size === 0) return least;
    if (this.slots.length < this.size) return this.spawn();
    return least !== undefined && least.jobs.size < COPIES_PER_WORKER ? least : undefined;
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      const slot = this.pick();
      if (slot === undefined) return;
      const job = this.queue.shift()!;
      slot.jobs.set(job.job.id, job);
      job.slot = slot;
      slot.worker.postMessage({ kind: 'job', job: job.job } satisfies MainMessage);
    }
  }

  private spawn(): Slot {
    const worker = startPoolWorker(import.meta.url, './encrypt-worker', {});
    worker.unref();
    const slot: Slot = { worker, jobs: new Map(), points: new Map() };
    this.slots.push(slot);
    worker.on('message', (message: WorkerMessage) => this.onMessage(slot, message));
    worker.on('error', (error) => this.retire(slot, error));
    worker.on('exit', () => this.retire(slot, new Error('encryption worker exited')));
    return slot;
  }

  private onMessage(slot: Slot, message: WorkerMessage): void {
    if (message.kind === 'points' || message.kind === 'points-failed') {
      const waiting = slot.points.get(message.id);
      slot.points.delete(message.id);
      if (message.kind === 'points') waiting?.resolve(message.results);
      else waiting?.reject(new Error(message.error));
      return;
    }
    const job = slot.jobs.get(message.id);
    if (job === undefined) return;
    switch (message.kind) {
      case 'head':
        job.headed = true;
        job.slots = message.slots;
        job.slotBytes = message.slotBytes;
        job.started(this.streamOf(job, message.byteLength, message.head));
        return;
      case 'piece':
        job.pieces.push({ slot: message.slot, length: message.length });
        break;
      case 'end':
        job.ended = true;
        break;
      case 'failed':
        this.fail(job, new Error(message.error));
        // Before its header section nobody holds the copy to release it.
        if (!job.headed) this.release(job);
        return;
    }
    job.wake?.();
  }

  /** What the LMTP client pulls: the batches as they come, asking the worker for the next. */
  private streamOf(job: Job, byteLength: number, head: Uint8Array): StreamedMessage {
    const next = async (): Promise<Uint8Array | null> => {
      for (;;) {
        if (job.failure !== undefined) throw job.failure;
        const piece = job.pieces.shift();
        if (piece !== undefined) {
          // The batch pulled before this one has been written: its slot may be refilled.
          if (job.held !== undefined && !job.ended && job.slot !== undefined)
            job.slot.worker.postMessage({
              kind: 'more',
              id: job.job.id,
              slot: job.held,
            } satisfies MainMessage);
          job.held = piece.slot;
          return new Uint8Array(job.slots!, piece.slot * job.slotBytes, piece.length);
        }
        if (job.ended) return null;
        await new Promise<void>((resolve) => (job.wake = resolve));
        job.wake = undefined;
      }
    };
    const release = (): void => this.release(job);
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        for (let piece = await next(); piece !== null; piece = await next()) yield piece;
      } finally {
        release();
      }
    }
    return { byteLength, head, body, abandon: release };
  }

  /** The copy is done with (sent, failed, or never sent): its worker takes the next. */
  private release(job: Job): void {
    if (job.released) return;
    job.released = true;
    const slot = job.slot;
    if (slot === undefined || slot.jobs.get(job.job.id) !== job) return;
    if (!job.ended && job.failure === undefined)
      slot.worker.postMessage({ kind: 'cancel', id: job.job.id } satisfies MainMessage);
    slot.jobs.delete(job.job.id);
    this.dispatch();
  }

  private fail(job: Job, error: Error): void {
    job.failure ??= error;
    job.refused(error);
    job.wake?.();
  }

  private failPoints(slot: Slot, error: Error): void {
    const waiting = [...slot.points.values()];
    slot.points.clear();
    for (const { reject } of waiting) reject(error);
  }

  private retire(slot: Slot, error: Error): void {
    const at = this.slots.indexOf(slot);
    if (at !== -1) this.slots.splice(at, 1);
    this.failPoints(slot, error);
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    for (const job of jobs) {
      job.slot = undefined;
      this.fail(job, error);
    }
    this.dispatch();
  }
}

/**
 * A whole encrypted copy (a list post: the list keeps it as one message) made by `pool`:
 * the worker encrypts and encodes, the event loop only copies the batches into place, a
 * batch per turn. The recryption core's `wrapMessage` on the event loop would hold it for
 * the whole message (about 180 ms of CPU for 50 MiB).
 */
async function wholeCopy(
  pool: EncryptPool,
  message: Uint8Array,
  certificate: Uint8Array,
): Promise<Uint8Array> {
  const stream = await pool.stream(message, certificate);
  const out = Buffer.allocUnsafe(stream.byteLength);
  let at = 0;
  const take = (piece: Uint8Array): void => {
    if (at + piece.byteLength > out.length) throw new Error('encryption longer than announced');
    out.set(piece, at);
    at += piece.byteLength;
  };
  try {
    take(stream.head);
    for await (const piece of stream.body()) take(piece);
  } finally {
    stream.abandon?.();
  }
  if (at !== out.length) throw new Error('encryption shorter than announced');
  return out;
}

/** `inner` with its copies, streamed and whole, made by `pool`; `inner` checks envelopes. */
export function pooledEncryptor(inner: MessageEncryptor, pool: EncryptPool): MessageEncryptor {
  return {
    encryptForGroup: (message, certificate) => wholeCopy(pool, message, certificate),
    isAlreadyForGroup: (message, certificate) => inner.isAlreadyForGroup(message, certificate),
    streamForGroup: (message, certificate) => pool.stream(message, certificate),
  };
}
