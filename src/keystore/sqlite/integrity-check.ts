/**
 * Does the key-store file still read? `/readyz` must answer 503 for a damaged page
 * (docs/operations.md), and `SELECT 1` on the open connection touches no page at all,
 * while its page cache would answer from memory even for pages that read back wrong
 * from disk. So the check opens a fresh read-only connection (which also fails on a file
 * that is gone or unreadable) and runs `PRAGMA quick_check`, which reads every page.
 *
 * That costs CPU in proportion to the file (0.4–1.2 s for a 64 MB store of 20,000
 * users here), so it runs in a worker thread, never on the event loop that serves mail,
 * one at a time, and a result is reused for `reuseMs`.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { KeyStoreError, KeyStoreUnavailableError } from '../errors.js';

const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');

// CommonJS, evaluated by the worker: no TypeScript loader there.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const rows = db.pragma('quick_check(5)');
  const problems = rows.map((row) => String(row.quick_check)).filter((text) => text !== 'ok');
  parentPort.postMessage({ problems });
} catch (error) {
  parentPort.postMessage({ failed: String(error.code || error.message) });
} finally {
  if (db) db.close();
}
`;

interface WorkerReply {
  problems?: string[];
  failed?: string;
}

export interface IntegrityCheckOptions {
  /** A result younger than this is returned again without a new check (default 10 s). */
  reuseMs?: number;
  /** A check that takes longer fails (default 30 s). */
  timeoutMs?: number;
}

export class SqliteIntegrityCheck {
  readonly #path: string;
  readonly #reuseMs: number;
  readonly #timeoutMs: number;
  #running: Promise<void> | undefined;
  #last: { at: number; result: Promise<void> } | undefined;

  constructor(path: string, options: IntegrityCheckOptions = {}) {
    this.#path = path;
    this.#reuseMs = options.reuseMs ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Resolves when every page reads and checks; rejects with KeyStoreError otherwise. */
  run(): Promise<void> {
    if (this.#running !== undefined) return this.#running;
    if (this.#last !== undefined && Date.now() - this.#last.at < this.#reuseMs)
      return this.#last.result;
    const result = this.#check();
    this.#running = result;
    const settle = () => {
      this.#running = undefined;
      this.#last = { at: Date.now(), result };
    };
    result.then(settle, settle);
    return result;
  }

  #check(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { driver: DRIVER, path: this.#path },
      });
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new KeyStoreUnavailableError('key store check timed out'));
      }, this.#timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
      worker.once('message', (reply: WorkerReply) => {
        if (reply.failed !== undefined)
          finish(new KeyStoreUnavailableError(`key store file unreadable (${reply.failed})`));
        else if ((reply.problems ?? []).length > 0)
          finish(
            new KeyStoreError(
              'corrupt',
              `key store file damaged: ${reply.problems!.join('; ').slice(0, 300)}`,
            ),
          );
        else finish();
      });
      worker.once('error', (error) =>
        finish(new KeyStoreUnavailableError('key store check failed', { cause: error })),
      );
      worker.once('exit', (code) => {
        if (code !== 0)
          finish(new KeyStoreUnavailableError(`key store check exited with code ${code}`));
      });
    });
  }
}
