/**
 * The JSON log of one `recrypt start` with several processes (docs/deployment.md
 * "Several processes on one machine"): the primary and its workers share its stdout, each
 * line naming its process (`primary`, `worker-<n>`). Used by the multi-process tests.
 */
import { expect } from 'vitest';
import { waitFor, type Spawned } from './gateway-process.js';

export interface LogLine {
  msg: string;
  process?: string;
  worker?: number;
  pid?: number;
  [field: string]: unknown;
}

export interface ClusterLog {
  /** The gateway's JSON log lines so far. */
  lines(): LogLine[];
  /** The processes that logged `msg` (where `match` holds). */
  loggedBy(msg: string, match?: (line: LogLine) => boolean): Set<string>;
  /**
   * Waits until exactly `processes` have logged `msg`: the lines reach this process through
   * a pipe, read only while the test is not blocked in a synchronous client (imaplib).
   */
  expectLoggedBy(
    msg: string,
    processes: string[],
    match?: (line: LogLine) => boolean,
  ): Promise<void>;
  /** The workers the primary has seen ready, latest last. */
  readyWorkers(): Array<{ worker: number; pid: number }>;
}

export function clusterLog(gateway: () => Spawned): ClusterLog {
  const lines = (): LogLine[] =>
    gateway()
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  const loggedBy = (msg: string, match: (line: LogLine) => boolean = () => true) =>
    new Set(
      lines()
        .filter((line) => line.msg === msg && match(line))
        .map((line) => line.process ?? 'unnamed'),
    );
  return {
    lines,
    loggedBy,
    async expectLoggedBy(msg, processes, match) {
      await waitFor(
        `${msg} from ${processes.join(', ')}`,
        () => loggedBy(msg, match).size >= processes.length,
        20_000,
      ).catch(() => undefined);
      expect(loggedBy(msg, match)).toEqual(new Set(processes));
    },
    readyWorkers: () =>
      lines()
        .filter((line) => line.msg === 'worker process ready' && line.process === 'primary')
        .map((line) => ({ worker: line.worker!, pid: line.pid! })),
  };
}
