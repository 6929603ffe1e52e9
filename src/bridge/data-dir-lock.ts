/**
 * One bridge per data directory (README.md, "One bridge per data directory"): the state
 * journal appends and compacts as if no other process wrote it, and the sweep at open
 * (cache-orphans.ts) removes every message file the state it read does not list, so a
 * second bridge on the same directory would corrupt the journal and delete the first
 * one's new files. `bridge.lock` holds the pid of the bridge using the directory.
 *
 * The file is made whole or not at all: written under a name of its own, then linked to
 * `bridge.lock` (a link, like O_EXCL, fails when the name exists, also on NFS), so no
 * reader sees it empty. It is stale when its pid no longer runs (a bridge killed with
 * SIGKILL, a power loss); only one process breaks a stale lock at a time, under
 * `bridge.lock.break` made the same way, and only after reading the same dead pid again
 * under it, so two bridges starting at once after a crash cannot both take it.
 * Released at close, and at exit by the process that holds it.
 *
 * `refuseDataDirInUse` only looks, taking nothing: the CLI calls it before it asks for a
 * passphrase, so a second bridge is refused before anyone types one. `lockDataDir`
 * (taken by `runBridge` alone) still decides: two bridges starting at once may both pass
 * the look, and the second is then refused by the lock after its prompt.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BridgeError } from './errors.js';

export const LOCK_FILE = 'bridge.lock';

/** Lock paths this process holds (a second bridge in one process is refused as well). */
const heldHere = new Set<string>();

/** How often a start looks again (10 ms apart) while another process breaks a stale lock. */
const ATTEMPTS = 50;

export interface DataDirLock {
  /** Removes the lock (once; it stays if another process took it over meanwhile). */
  release(): void;
}

/**
 * Takes the lock of `dataDir`, or fails with `in-use` naming the pid of the bridge that
 * holds it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = resolve(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (created(path)) return held(path);
    const holder = holderOf(path);
    if (holder === null) continue; // released meanwhile
    if (running(holder, path)) throw inUse(dataDir, path, holder);
    if (!breakStale(path, holder)) await new Promise((done) => setTimeout(done, 10));
  }
  throw new BridgeError('in-use', `${path} could not be taken: another bridge is starting`);
}

/**
 * Fails with `in-use`, as `lockDataDir` would, when a running bridge holds the lock of
 * `dataDir`; takes nothing (a stale lock is left for `lockDataDir` to break).
 */
export function refuseDataDirInUse(dataDir: string): void {
  const path = resolve(dataDir, LOCK_FILE);
  const holder = holderOf(path);
  if (holder !== null && running(holder, path)) throw inUse(dataDir, path, holder);
}

function inUse(dataDir: string, path: string, holder: number): BridgeError {
  return new BridgeError(
    'in-use',
    `another bridge (pid ${holder}) uses ${dataDir}: stop it first (its lock is ${path})`,
  );
}

/** Creates `path` holding this process's pid; false when it exists. */
function created(path: string): boolean {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, `${process.pid}\n`, { mode: 0o600 });
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** The pid in the lock file; null when there is none any more. */
function holderOf(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const pid = /^(\d+)\n$/.exec(text)?.[1];
  if (pid === undefined || !Number.isSafeInteger(Number(pid)) || Number(pid) <= 0)
    throw new BridgeError(
      'in-use',
      `${path} is not a bridge's lock: remove it if no bridge uses this data directory`,
    );
  return Number(pid);
}

/** Whether `pid` runs: this process only while it holds `path` (else it is an earlier one's pid). */
function running(pid: number, path: string): boolean {
  if (pid === process.pid) return heldHere.has(path);
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes the lock of the dead `holder` under the break lock; false when another process
 * is breaking it now (the caller waits and looks again).
 */
function breakStale(path: string, holder: number): boolean {
  const breaker = `${path}.break`;
  if (!created(breaker)) {
    // Left by a process killed while breaking (a few system calls): stale in turn.
    const breaking = holderOf(breaker);
    if (breaking !== null && !running(breaking, breaker)) rmSync(breaker, { force: true });
    return false;
  }
  try {
    if (holderOf(path) === holder) rmSync(path, { force: true });
  } finally {
    rmSync(breaker, { force: true });
  }
  return true;
}

function held(path: string): DataDirLock {
  heldHere.add(path);
  const release = (): void => {
    if (!heldHere.delete(path)) return;
    process.off('exit', release);
    try {
      if (readFileSync(path, 'utf8') === `${process.pid}\n`) rmSync(path, { force: true });
    } catch {
      // Gone already.
    }
  };
  process.on('exit', release);
  return { release };
}
