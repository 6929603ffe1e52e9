/**
 * A gateway primary's shared state (src/gateway/primary-shared.ts) and `count` workers'
 * links to it, in one process, joined the way cluster IPC joins them: every message
 * structured-cloned and handed over asynchronously. A stand-in for the IPC channel only
 * (what a real primary and real workers do is test/gateway/multi-process-sqlite.test.ts).
 */
import type { Worker } from 'node:cluster';
import { createLogger } from '../../src/config/logger.js';
import { PrimaryLink } from '../../src/gateway/primary-link.js';
import { PrimaryShared, type PrimarySharedOptions } from '../../src/gateway/primary-shared.js';
import type { PrimaryMessage, WorkerMessage } from '../../src/gateway/roles.js';

export function inProcessPrimary(
  count: number,
  options: Pick<PrimarySharedOptions, 'onJobsQueued'> = {},
): { primary: PrimaryShared; workers: PrimaryLink[] } {
  const links = new Map<Worker, PrimaryLink>();
  const deliver = (worker: Worker, message: PrimaryMessage) => {
    const copy = structuredClone(message);
    setImmediate(() => {
      const link = links.get(worker)!;
      if (copy.type === 'answer') link.answer(copy);
      else if (copy.type === 'keystore-events') link.received(copy.events);
    });
  };
  const primary = new PrimaryShared({
    broadcast: (message, except) => {
      for (const worker of links.keys()) if (worker !== except) deliver(worker, message);
    },
    send: deliver,
    logger: createLogger('silent'),
    ...options,
  });
  const workers = Array.from({ length: count }, (_, i) => {
    // Only its identity is used: which worker a message came from, which to leave out.
    const worker = { id: i + 1 } as Worker;
    const link = new PrimaryLink((message: WorkerMessage) => {
      const copy = structuredClone(message);
      setImmediate(() => primary.handle(worker, copy));
      return true;
    });
    links.set(worker, link);
    return link;
  });
  return { primary, workers };
}
