/**
 * The MX's worker threads (encryption, sender authentication) run below the event loop's
 * CPU priority. They exist to take bulk work off the one thread that serves SMTP, IMAP
 * and HTTPS; on a busy machine with few cores they would otherwise compete with it as
 * equals, and every batch they hand over wakes them and lets the kernel run them ahead of
 * the thread that woke them: the event loop waits for its own helpers (docs/threat-model.md,
 * "Limits": no message may stall the gateway). With a higher nice value a worker still
 * gets every core the event loop leaves idle, so its throughput on a quiet machine stays.
 *
 * On Linux a thread's nice value is its own: setpriority(PRIO_PROCESS, 0) from a thread
 * changes that thread only. Elsewhere the same call would lower the whole process, so it
 * is left alone there.
 */
import { getPriority, setPriority } from 'node:os';

/** How far below the event loop a worker runs (nice steps; 19 is the lowest priority). */
export const WORKER_NICE_STEPS = 10;

/** Lowers the calling worker thread's priority; true when it did. Never throws. */
export function lowerWorkerThreadPriority(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    setPriority(Math.min(19, getPriority() + WORKER_NICE_STEPS));
    return true;
  } catch {
    // A sandbox that forbids setpriority: the worker runs as before.
    return false;
  }
}
