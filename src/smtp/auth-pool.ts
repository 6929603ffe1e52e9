/**
 * Sender authentication (mailauth: SPF, DKIM, DMARC) in worker threads with a deadline
 * that really interrupts it: a check still running when the deadline passes has its
 * worker terminated, and the message gets temperror (docs/threat-model.md "Limits").
 * On the main thread a timer cannot fire while synchronous parsing holds the event loop,
 * which is how one hostile header stalled SMTP, IMAP and HTTPS for everyone.
 *
 * Workers are kept between messages (starting one costs tens of milliseconds); at most
 * `size` run at once and further checks wait their turn, inside their own deadline.
 * The message reaches the worker as a view into the collector's SharedArrayBuffer, so
 * nothing is copied on the event loop. DNS stays on the main thread (auth-worker.ts).
 */
import { promises as dns } from 'node:dns';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { AuthJob, MainMessage, WorkerMessage } from './auth-worker.js';
import { startPoolWorker } from './pool-worker.js';
import type { DnsResolver } from './ports.js';

export interface AuthPoolOptions {
  /** Workers running at once; default one less than the cores (at least 1, at most 4). */
  size?: number;
  resolver?: DnsResolver;
}

export type AuthRequest = Omit<AuthJob, 'id'>;

interface Task {
  job: AuthJob;
  resolve: (headers: string) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  slot?: Slot;
}

interface Slot {
  worker: Worker;
  task?: Task;
}

export class AuthPool {
  private readonly size: number;
  private readonly resolver: DnsResolver;
  private readonly idle: Slot[] = [];
  private readonly busy = new Set<Slot>();
  private readonly queue: Task[] = [];
  private nextId = 0;
  private closed = false;

  constructor(options: AuthPoolOptions = {}) {
    this.size = options.size ?? Math.min(4, Math.max(1, availableParallelism() - 1));
    this.resolver = options.resolver ?? (dns.resolve as DnsResolver);
  }

  /** Starts one worker ahead of the first message (loading mailauth takes a while). */
  warm(): void {
    if (!this.closed && this.idle.length + this.busy.size === 0) this.idle.push(this.spawn());
  }

  /** The Authentication-Results text mailauth made; rejects on failure or past `timeoutMs`. */
  check(request: AuthRequest, timeoutMs: number): Promise<string> {
    if (this.closed) return Promise.reject(new Error('authentication pool closed'));
    return new Promise<string>((resolve, reject) => {
      const task: Task = {
        job: { ...request, id: this.nextId++ },
        resolve,
        reject,
        timer: setTimeout(() => this.expire(task), timeoutMs),
      };
      this.queue.push(task);
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) this.finish(task, new Error('pool closed'));
    const slots = [...this.idle.splice(0), ...this.busy];
    this.busy.clear();
    for (const slot of slots) if (slot.task) this.finish(slot.task, new Error('pool closed'));
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      const slot = this.idle.pop() ?? (this.busy.size < this.size ? this.spawn() : undefined);
      if (slot === undefined) return;
      const task = this.queue.shift()!;
      slot.task = task;
      task.slot = slot;
      this.busy.add(slot);
      slot.worker.postMessage({ kind: 'job', job: task.job } satisfies MainMessage);
    }
  }

  private spawn(): Slot {
    // mailauth writes to the console on some inputs (a DKIM l= that does not match);
    // that output is taken and dropped rather than let a sender write to our logs.
    const worker = startPoolWorker(import.meta.url, './auth-worker', {
      stdout: true,
      stderr: true,
    });
    worker.stdout.resume();
    worker.stderr.resume();
    worker.unref();
    const slot: Slot = { worker };
    worker.on('message', (message: WorkerMessage) => this.onMessage(slot, message));
    worker.on('error', (error) => this.retire(slot, error));
    worker.on('exit', () => this.retire(slot, new Error('authentication worker exited')));
    return slot;
  }

  private onMessage(slot: Slot, message: WorkerMessage): void {
    if (message.kind === 'dns') {
      this.resolver(message.name, message.rrtype).then(
        (answer) => this.reply(slot, { kind: 'dns', query: message.query, answer }),
        (error: NodeJS.ErrnoException) =>
          this.reply(slot, {
            kind: 'dns',
            query: message.query,
            error: {
              message: String(error?.message ?? error),
              ...(error?.code ? { code: error.code } : {}),
            },
          }),
      );
      return;
    }
    const task = slot.task;
    if (task === undefined || task.job.id !== message.id) return;
    slot.task = undefined;
    this.busy.delete(slot);
    if (!this.closed) this.idle.push(slot);
    if (message.kind === 'result') this.finish(task, undefined, message.headers);
    else this.finish(task, new Error(message.error));
    this.dispatch();
  }

  private reply(slot: Slot, message: MainMessage): void {
    if (this.busy.has(slot)) slot.worker.postMessage(message);
  }

  /** The deadline: a queued check leaves the queue; a running one loses its worker. */
  private expire(task: Task): void {
    const slot = task.slot;
    if (slot === undefined) {
      const at = this.queue.indexOf(task);
      if (at !== -1) this.queue.splice(at, 1);
    } else {
      this.busy.delete(slot);
      slot.task = undefined;
      void slot.worker.terminate();
    }
    this.finish(task, new Error('authentication checks timed out'));
    this.dispatch();
  }

  private retire(slot: Slot, error: Error): void {
    const at = this.idle.indexOf(slot);
    if (at !== -1) this.idle.splice(at, 1);
    this.busy.delete(slot);
    if (slot.task !== undefined) {
      const task = slot.task;
      slot.task = undefined;
      this.finish(task, error);
    }
    this.dispatch();
  }

  private finish(task: Task, error?: Error, headers?: string): void {
    clearTimeout(task.timer);
    if (error === undefined) task.resolve(headers ?? '');
    else task.reject(error);
  }
}
