/**
 * The worker thread that runs mailauth's SPF, DKIM and DMARC checks (auth-pool.ts starts
 * it). Its CPU never blocks the gateway's event loop, and the pool terminates it when the
 * deadline passes, which a timer on the main thread cannot do to synchronous work.
 * DNS queries go back to the main thread, which owns the resolver (injectable in tests).
 */
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { authenticate } from 'mailauth';
import { authenticationInput } from './auth-input.js';
import { lowerWorkerThreadPriority } from './worker-priority.js';

export interface AuthJob {
  id: number;
  /** The message: a view into the collector's SharedArrayBuffer (no copy). */
  message: Uint8Array;
  ip: string;
  helo: string;
  sender: string;
  mta: string;
  maxDkimSignatures: number;
}

export type WorkerMessage =
  | { kind: 'result'; id: number; headers: string }
  | { kind: 'failed'; id: number; error: string }
  | { kind: 'dns'; query: number; name: string; rrtype: string };

export type MainMessage =
  | { kind: 'job'; job: AuthJob }
  | { kind: 'dns'; query: number; answer?: unknown; error?: { code?: string; message: string } };

const SLICE = 64 * 1024;
const port = parentPort!;
lowerWorkerThreadPriority();
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextQuery = 0;

function resolver(name: string, rrtype: string): Promise<unknown> {
  const query = nextQuery++;
  return new Promise((resolve, reject) => {
    pending.set(query, { resolve, reject });
    port.postMessage({ kind: 'dns', query, name, rrtype } satisfies WorkerMessage);
  });
}

function* slices(parts: Buffer[]): Generator<Buffer> {
  for (const part of parts)
    for (let at = 0; at < part.length; at += SLICE)
      yield part.subarray(at, Math.min(at + SLICE, part.length));
}

async function run(job: AuthJob): Promise<WorkerMessage> {
  const message = Buffer.from(job.message.buffer, job.message.byteOffset, job.message.byteLength);
  try {
    const result = await authenticate(
      Readable.from(slices(authenticationInput(message, job.maxDkimSignatures)), {
        objectMode: false,
      }),
      {
        ip: job.ip,
        helo: job.helo,
        sender: job.sender,
        mta: job.mta,
        disableArc: true,
        disableBimi: true,
        resolver: resolver as never,
      },
    );
    return { kind: 'result', id: job.id, headers: result.headers };
  } catch (error) {
    return { kind: 'failed', id: job.id, error: (error as Error).message };
  }
}

port.on('message', (message: MainMessage) => {
  if (message.kind === 'job') {
    void run(message.job).then((reply) => port.postMessage(reply));
    return;
  }
  const waiter = pending.get(message.query);
  if (waiter === undefined) return;
  pending.delete(message.query);
  if (message.error === undefined) waiter.resolve(message.answer);
  else
    waiter.reject(
      Object.assign(new Error(message.error.message), { code: message.error.code }) as Error,
    );
});
