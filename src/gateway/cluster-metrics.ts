/**
 * /metrics of several processes (docs/deployment.md "Several processes on one machine"):
 * a scrape reaches one worker, which asks the primary; the primary asks every worker for
 * its series (each labelled `worker="<n>"`), adds its own (`worker="primary"`: the
 * embedded mail store, the outbound queue's delivery, its key store) and answers with them
 * all, merged as prom-client's cluster aggregation merges them.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { MetricsJson, PrimaryMessage } from './roles.js';

/** How long the primary waits for each worker's series (prom-client's own wait). */
const WORKER_TIMEOUT_MS = 5_000;

interface Request {
  responses: MetricsJson[];
  pending: number;
  done(error: Error | null): void;
}

export class MetricsGatherer {
  readonly #own: Registry | undefined;
  readonly #requests = new Map<number, Request>();
  #next = 0;

  /** `own`: the primary's registry, served beside the workers' as `worker="primary"`. */
  constructor(own?: Registry) {
    this.#own = own;
    own?.setDefaultLabels({ worker: 'primary' });
  }

  /** Every worker's series and the primary's, in the exposition format. */
  async gather(
    workers: Worker[],
    send: (worker: Worker, message: PrimaryMessage) => boolean,
  ): Promise<string> {
    const id = this.#next++;
    const request: Request = { responses: [], pending: 0, done: () => undefined };
    const answered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => request.done(new Error('a worker did not send its metrics in time')),
        WORKER_TIMEOUT_MS,
      );
      request.done = (error) => {
        clearTimeout(timer);
        this.#requests.delete(id);
        if (error === null) resolve();
        else reject(error);
      };
    });
    this.#requests.set(id, request);
    for (const worker of workers) if (send(worker, { type: 'metrics-json', id })) request.pending++;
    if (request.pending === 0) request.done(null);
    const [own] = await Promise.all([
      this.#own === undefined ? [] : this.#own.getMetricsAsJSON().then((json) => [json]),
      answered,
    ]);
    return AggregatorRegistry.aggregate([...own, ...request.responses]).metrics();
  }

  /** A worker's reply to `gather`'s question. */
  received(reply: { id: number; metrics?: MetricsJson; error?: string }): void {
    const request = this.#requests.get(reply.id);
    if (request === undefined) return;
    if (reply.metrics === undefined) {
      request.done(new Error(reply.error ?? 'a worker sent no metrics'));
      return;
    }
    request.responses.push(reply.metrics);
    if (--request.pending === 0) request.done(null);
  }
}
