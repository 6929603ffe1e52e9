/**
 * A worker's line to its primary over cluster IPC, with the SQLite key store
 * (docs/deployment.md "Several processes on one machine"): what Redis holds for every
 * process otherwise, the primary holds here. Questions (login failure counts, rate-limit
 * tokens) are answered by the primary from memory; each waits at most `timeoutMs`, and at
 * most `maxPending` wait at once, so a primary that does not answer costs a bounded wait
 * and bounded memory (the callers decide what a missing answer means). Key-store events
 * made in this worker go to the primary, which hands them to every other process, and so
 * do the outbound jobs it queues (the primary delivers them).
 */
import type { KeyStoreEvent } from '../keystore/index.js';
import type { SharedAnswer, SharedQuestion, WorkerMessage } from './roles.js';

/** The primary answers from memory: a second is already a primary in trouble. */
const ANSWER_TIMEOUT_MS = 2_000;
const MAX_PENDING = 10_000;

export class PrimaryUnavailableError extends Error {
  override readonly name = 'PrimaryUnavailableError';
}

interface Pending {
  resolve(answer: SharedAnswer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class PrimaryLink {
  readonly #send: (message: WorkerMessage) => boolean;
  readonly #timeoutMs: number;
  readonly #maxPending: number;
  readonly #pending = new Map<number, Pending>();
  readonly #eventListeners = new Set<(events: KeyStoreEvent[]) => void>();
  #next = 0;

  /** `send` returns false when the message could not be handed to the channel. */
  constructor(
    send: (message: WorkerMessage) => boolean,
    options: { timeoutMs?: number; maxPending?: number } = {},
  ) {
    this.#send = send;
    this.#timeoutMs = options.timeoutMs ?? ANSWER_TIMEOUT_MS;
    this.#maxPending = options.maxPending ?? MAX_PENDING;
  }

  /** The primary's answer; rejects with PrimaryUnavailableError when none comes in time. */
  ask(question: SharedQuestion): Promise<SharedAnswer> {
    if (this.#pending.size >= this.#maxPending)
      return Promise.reject(new PrimaryUnavailableError('too many questions to the primary'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new PrimaryUnavailableError('the primary did not answer in time'));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      if (!this.#send({ type: 'ask', id, question })) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new PrimaryUnavailableError('no channel to the primary'));
      }
    });
  }

  /** The primary's reply to `ask`. */
  answer(reply: { id: number; answer?: SharedAnswer; error?: string }): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.answer !== undefined) pending.resolve(reply.answer);
    else pending.reject(new PrimaryUnavailableError(reply.error ?? 'no answer'));
  }

  /** Sends this worker's key-store events to the primary (for every other process). */
  publish(events: KeyStoreEvent[]): void {
    this.#send({ type: 'keystore-events', events });
  }

  /**
   * Tells the primary of outbound jobs just queued (durable in the queue directory), so it
   * sends them now rather than at its next look at the directory. Not answered: a message
   * lost with the channel costs only that wait.
   */
  queued(jobs: Array<{ id: string; nextAttempt: number }>): void {
    if (jobs.length > 0) this.#send({ type: 'queued', jobs });
  }

  /** Key-store events another process made, as the primary relays them. */
  onEvents(listener: (events: KeyStoreEvent[]) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Called with the primary's relayed events. */
  received(events: KeyStoreEvent[]): void {
    for (const listener of [...this.#eventListeners]) listener(events);
  }
}
