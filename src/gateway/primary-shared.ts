/**
 * What the primary holds for its workers with the SQLite key store (docs/deployment.md
 * "Several processes on one machine"), where Redis would hold it for them: the login
 * failure counts, the rate-limit buckets and the claims on held posts, answered over
 * cluster IPC (the workers ask
 * through primary-link.ts), and the relay of key-store events: a worker's events go to
 * every other worker and to the primary's own key store (cluster-events.ts). A worker's
 * "jobs queued" goes to the primary's outbound queue.
 */
import type { Worker } from 'node:cluster';
import { RateLimitHolder } from '../admin/ipc-rate-limit.js';
import type { Logger } from '../config/logger.js';
import { answerLoginFailures, memoryLoginFailures } from '../imap/ipc-throttle.js';
import type { KeyStoreEvent } from '../keystore/index.js';
import { relayableEvents, type EventRelay } from './cluster-events.js';
import { HeldClaims } from './held-claims.js';
import type { PrimaryMessage, SharedAnswer, SharedQuestion, WorkerMessage } from './roles.js';

export interface PrimarySharedOptions {
  /** Sends to every worker but `except`. */
  broadcast(message: PrimaryMessage, except?: Worker): void;
  send(worker: Worker, message: PrimaryMessage): void;
  logger: Logger;
  /** Outbound jobs a worker queued in the queue directory (the primary's queue sends them). */
  onJobsQueued?(jobs: Array<{ id: string; nextAttempt: number }>): void;
}

export class PrimaryShared {
  readonly #options: PrimarySharedOptions;
  readonly #loginFailures = memoryLoginFailures();
  readonly #rates = new RateLimitHolder();
  readonly #claims = new HeldClaims();
  readonly #listeners = new Set<(events: KeyStoreEvent[]) => void>();

  /** The relay for the primary's own key store: its events reach every worker. */
  readonly relay: EventRelay = {
    publish: (events) => this.#options.broadcast({ type: 'keystore-events', events }),
    onEvents: (listener) => {
      this.#listeners.add(listener);
      return () => this.#listeners.delete(listener);
    },
  };

  constructor(options: PrimarySharedOptions) {
    this.#options = options;
  }

  /** Handles a worker's message if it is one of these; false otherwise. */
  handle(worker: Worker, message: WorkerMessage): boolean {
    if (message.type === 'keystore-events') {
      const events = relayableEvents(message.events);
      if (events.length === 0) return true;
      this.#options.broadcast({ type: 'keystore-events', events }, worker);
      for (const listener of [...this.#listeners]) listener(events);
      return true;
    }
    if (message.type === 'queued') {
      if (Array.isArray(message.jobs)) this.#options.onJobsQueued?.(message.jobs);
      return true;
    }
    if (message.type === 'ask') {
      const { id, question } = message;
      this.#answer(question).then(
        (answer) => this.#options.send(worker, { type: 'answer', id, answer }),
        (error: unknown) => {
          this.#options.logger.warn(
            { worker: worker.id, err: (error as Error).message },
            'a worker question was not answered',
          );
          this.#options.send(worker, { type: 'answer', id, error: (error as Error).message });
        },
      );
      return true;
    }
    return false;
  }

  async #answer(question: SharedQuestion): Promise<SharedAnswer> {
    switch (question.kind) {
      case 'rate-take':
        return { kind: 'rate-take', verdict: this.#rates.take(question) };
      case 'held-claim':
        return { kind: 'held-claim', token: this.#claims.claim(question.key, question.ms) };
      case 'held-release':
        this.#claims.release(question.key, question.token);
        return { kind: 'done' };
      case 'login-counts':
      case 'login-record':
      case 'login-clear':
        return answerLoginFailures(this.#loginFailures, question);
      default:
        throw new Error('unknown question');
    }
  }
}
