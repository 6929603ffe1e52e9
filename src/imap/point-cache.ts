/**
 * The persistent point cache: recrypt plans — the recrypted originator points E′ and the
 * device's recipient identifier, at their offsets — per (account, device, store user,
 * mailbox, UIDVALIDITY, UID, section), in one SQLite file in the data directory
 * (docs/design.md §4). E′ = ±rk·E is public (the device receives it) and deterministic,
 * so it is computed once, at the first fetch of a message by that device, and every
 * later fetch, in any session, after a restart, reads it here instead of multiplying
 * (one P-256 multiplication costs about what the store takes to serve a 20 KiB message).
 * Partial fetches take their plan from here too, without a side fetch.
 *
 * Safety: an entry is served only to the device it was made for (the key names it), only
 * while that device holds the same keys (a fingerprint of them is stored and compared:
 * a rotation or re-key makes old entries unreadable even before they are deleted), and
 * only if its checksum holds (a damaged entry is ignored and deleted). Revocation, user
 * removal and key changes delete the entries (server.ts, adapters/point-cache-events.ts).
 *
 * Writes are queued and committed together (one transaction per 100 ms or 512 plans),
 * off the response path: a commit per message would cost more than the multiply saved.
 * The table is bounded: past `maxEntries` the oldest writes are dropped.
 *
 * Reads: the plans read or made lately are also kept decoded in memory (`recent`, at most
 * RECENT_ENTRIES, oldest dropped first), under the same key and with the same fingerprint
 * check on every read, so a repeat fetch costs a map lookup instead of a SQLite read, a
 * checksum and a decode per message (the largest proxy items of a repeat FETCH of small
 * messages, bench/proxy.bench.ts). The forget* calls drop them too.
 *
 * First fetch: `delivered` (delivered-points.ts, a table of the same file) holds the
 * points the MX computed at delivery, found by E, so a first fetch need not multiply
 * either; the forget* calls drop those of the device too. A whole plan made at delivery
 * (`delivered: true`, delivered-plans.ts) is kept in memory only: its own row answers
 * any later fetch of the same body, so a row here would cost a first fetch an encoding,
 * a checksum and an insert for nothing.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { PlanKey, PlanLookup, SettledPlan } from './plan-cache.js';
import { decodePlan, encodePlan } from './plan-codec.js';
import { DeliveredPoints } from './delivered-points.js';
import { WriteQueue } from './write-queue.js';

/** Whose plans: the account and device they were made for, and the store user read. */
export interface PlanScope {
  /** The device owner's address (normalised by the directory). */
  owner: string;
  device: string;
  /** The upstream login's user: the owner, or a list whose archive is open. */
  storeUser: string;
  /** `keysFingerprint` of the device's keys now. */
  fingerprint: () => Buffer;
}

export interface PointCacheStats {
  hits: number;
  misses: number;
  /** Entries found damaged (ignored and deleted). */
  corrupt: number;
  /** Entries made with other keys (ignored). */
  stale: number;
  /** SQLite calls that failed (treated as misses; writes dropped). */
  errors: number;
}

export const DEFAULT_MAX_ENTRIES = 2_000_000;
const EVICT_CHECK_EVERY = 10_000;

/** Bumped when the stored form changes: a file of another version is emptied on open. */
const SCHEMA_VERSION = 1;
/** Queued writes are committed this long after the first, or at once past FLUSH_AT. */
const FLUSH_DELAY_MS = 100;
const FLUSH_AT = 512;
const FP_BYTES = 16;
const SUM_BYTES = 16;
/** Decoded plans kept in memory: a few hundred bytes each, so a few tens of MB at most. */
export const RECENT_ENTRIES = 65_536;

type Fields = [string, string, string, string, number, number, string];

interface Row {
  /** fingerprint (16) ‖ checksum (16) ‖ encoded plan: one column, one allocation per read. */
  entry: Buffer;
}

interface Pending {
  fields: Fields;
  entry: Buffer;
}

interface Recent {
  fields: Fields;
  fingerprint: Buffer;
  plan: SettledPlan;
}

export class PointCache {
  readonly stats: PointCacheStats = { hits: 0, misses: 0, corrupt: 0, stale: 0, errors: 0 };
  /** Points computed at delivery, for first fetches. */
  readonly delivered: DeliveredPoints;
  private readonly db: Database.Database;
  private readonly select: Database.Statement<unknown[], Row>;
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly pending: WriteQueue<Pending>;
  private readonly recent = new Map<string, Recent>();
  private closed = false;

  constructor(
    path: string,
    private readonly maxEntries = DEFAULT_MAX_ENTRIES,
    private readonly recentEntries = RECENT_ENTRIES,
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    if (this.db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      this.db.exec('DROP TABLE IF EXISTS plans');
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    this.db.exec(`CREATE TABLE IF NOT EXISTS plans (
      owner TEXT NOT NULL, device TEXT NOT NULL, store_user TEXT NOT NULL,
      mailbox TEXT NOT NULL, uid_validity INTEGER NOT NULL, uid INTEGER NOT NULL,
      section TEXT NOT NULL, entry BLOB NOT NULL,
      UNIQUE (owner, device, store_user, mailbox, uid_validity, uid, section))`);
    this.select = this.db.prepare<unknown[], Row>(
      `SELECT entry FROM plans WHERE owner = ? AND device = ? AND store_user = ?
       AND mailbox = ? AND uid_validity = ? AND uid = ? AND section = ?`,
    );
    this.insert = this.db.prepare(
      `INSERT OR REPLACE INTO plans (owner, device, store_user, mailbox, uid_validity, uid,
       section, entry) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.remove = this.db.prepare(
      `DELETE FROM plans WHERE owner = ? AND device = ? AND store_user = ? AND mailbox = ?
       AND uid_validity = ? AND uid = ? AND section = ?`,
    );
    this.delivered = new DeliveredPoints(this.db);
    this.pending = new WriteQueue<Pending>({
      delayMs: FLUSH_DELAY_MS,
      flushAt: FLUSH_AT,
      write: ({ fields, entry }) => this.insert.run(...fields, entry),
      transaction: (fn) => this.db.transaction(fn)(),
      guard: (fn) => this.guard(fn),
      evictEvery: EVICT_CHECK_EVERY,
      evict: () => this.evict(),
    });
  }

  /**
   * Opens the cache at `path`; a file SQLite cannot use (damaged, another format) is
   * deleted and made anew — it holds nothing that cannot be recomputed. Null (and the
   * proxy multiplies on every fetch) only if even a fresh file cannot be made.
   */
  static openOrReset(path: string, onReset: (error: unknown) => void): PointCache | null {
    try {
      return new PointCache(path);
    } catch (error) {
      onReset(error);
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
      try {
        return new PointCache(path);
      } catch (again) {
        onReset(again);
        return null;
      }
    }
  }

  /** `get` from memory only (the plans kept decoded): no file read. */
  peek(scope: PlanScope, key: PlanKey): SettledPlan | undefined {
    if (this.closed) return undefined;
    const recent = this.recent.get(keyFields(scope, key).join('\u0000'));
    if (recent === undefined || !recent.fingerprint.equals(scope.fingerprint())) return undefined;
    this.stats.hits++;
    return recent.plan;
  }

  /** The plan for `key` made for `scope`'s device with its current keys, if one is kept. */
  get(scope: PlanScope, key: PlanKey): SettledPlan | undefined {
    if (this.closed) return undefined;
    const fields = keyFields(scope, key);
    const id = fields.join('\u0000');
    const recent = this.recent.get(id);
    if (recent !== undefined) {
      if (recent.fingerprint.equals(scope.fingerprint())) {
        this.stats.hits++;
        return recent.plan;
      }
      this.recent.delete(id);
    }
    const entry = this.pending.get(id)?.entry ?? this.read(fields);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    const plan = entry.length > FP_BYTES + SUM_BYTES ? readEntry(fields, entry) : null;
    if (plan === null) {
      this.stats.corrupt++;
      this.pending.delete(id);
      this.guard(() => this.remove.run(...fields));
      return undefined;
    }
    const fingerprint = entry.subarray(0, FP_BYTES);
    if (!fingerprint.equals(scope.fingerprint())) {
      this.stats.stale++;
      return undefined;
    }
    this.stats.hits++;
    this.remember(id, { fields, fingerprint: Buffer.from(fingerprint), plan });
    return plan;
  }

  /** Keeps `plan` (committed shortly, in one transaction with others). Failures are not kept. */
  set(scope: PlanScope, key: PlanKey, plan: SettledPlan): void {
    if (this.closed) return;
    if (plan.kind === 'unchanged' && plan.reason.startsWith('plan-error')) return;
    const fields = keyFields(scope, key);
    const fp = scope.fingerprint();
    const id = fields.join('\u0000');
    this.remember(id, { fields, fingerprint: Buffer.from(fp), plan });
    // A plan made at delivery is found again by the body's bytes (delivered-plans.ts), in
    // any process and after a restart: a row here would only repeat it, at the cost of
    // an encoding, a checksum and an insert per message on a first fetch.
    if (plan.kind === 'edits' && plan.delivered === true) return;
    const encoded = encodePlan(plan);
    const entry = Buffer.concat([fp, checksum(fields, fp, encoded), encoded]);
    this.pending.put(id, { fields, entry });
  }

  /** Drops every entry of one device (revoked, or its keys changed). */
  forgetDevice(owner: string, device: string): void {
    this.delivered.forgetDevice(owner, device);
    this.dropPending((values) => values[0] === owner && values[1] === device);
    if (!this.closed)
      this.guard(() =>
        this.db.prepare('DELETE FROM plans WHERE owner = ? AND device = ?').run(owner, device),
      );
  }

  /** Drops every entry of every device of `owner` (removed, or its lists changed). */
  forgetOwner(owner: string): void {
    this.delivered.forgetOwner(owner);
    this.dropPending((values) => values[0] === owner);
    if (!this.closed)
      this.guard(() => this.db.prepare('DELETE FROM plans WHERE owner = ?').run(owner));
  }

  /** Drops every entry read from `storeUser`'s mailboxes (a list archive whose list changed). */
  forgetStoreUser(storeUser: string): void {
    this.dropPending((values) => values[2] === storeUser);
    if (!this.closed)
      this.guard(() => this.db.prepare('DELETE FROM plans WHERE store_user = ?').run(storeUser));
  }

  /** Drops everything (after a gap in the key store's notifications). */
  clear(): void {
    this.delivered.clear();
    this.pending.clear();
    this.recent.clear();
    if (!this.closed) this.guard(() => this.db.exec('DELETE FROM plans'));
  }

  /** Entries stored (committed ones). */
  size(): number {
    this.flush();
    return (this.db.prepare('SELECT count(*) AS n FROM plans').get() as { n: number }).n;
  }

  /** Commits the queued writes now. */
  flush(): void {
    // A failed commit (disk full, the file locked too long) loses only these plans.
    if (!this.closed) this.pending.flush();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.pending.stop();
    this.delivered.close();
    this.closed = true;
    this.recent.clear();
    this.db.close();
  }

  /** A stored entry, or undefined; a failed read is a miss (the fetch multiplies). */
  private read(fields: Fields): Buffer | undefined {
    return this.guard(() => this.select.get(...fields)?.entry);
  }

  /**
   * Runs one SQLite call; an error is counted and swallowed. The cache must never fail a
   * fetch: without it the proxy only multiplies again.
   */
  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch {
      this.stats.errors++;
      return undefined;
    }
  }

  private evict(): void {
    const { n } = this.db.prepare('SELECT count(*) AS n FROM plans').get() as { n: number };
    if (n <= this.maxEntries) return;
    this.db
      .prepare('DELETE FROM plans WHERE rowid IN (SELECT rowid FROM plans ORDER BY rowid LIMIT ?)')
      .run(n - this.maxEntries);
  }

  /** Drops queued writes and in-memory plans whose key matches. */
  private dropPending(match: (fields: Fields) => boolean): void {
    this.pending.drop((entry) => match(entry.fields));
    for (const [id, entry] of this.recent) if (match(entry.fields)) this.recent.delete(id);
  }

  private remember(id: string, recent: Recent): void {
    this.recent.delete(id);
    this.recent.set(id, recent);
    if (this.recent.size > this.recentEntries) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }
}

function keyFields(scope: PlanScope, key: PlanKey): Fields {
  return [
    scope.owner,
    scope.device,
    scope.storeUser,
    key.mailbox,
    key.uidValidity,
    key.uid,
    key.section,
  ];
}

/** The plan in `entry` if its checksum holds for `fields`; null when damaged. */
function readEntry(fields: Fields, entry: Buffer): SettledPlan | null {
  const fp = entry.subarray(0, FP_BYTES);
  const sum = entry.subarray(FP_BYTES, FP_BYTES + SUM_BYTES);
  const encoded = entry.subarray(FP_BYTES + SUM_BYTES);
  return sum.equals(checksum(fields, fp, encoded)) ? decodePlan(encoded) : null;
}

/** Binds an entry to its key, so that a row copied or damaged in place is not served. */
function checksum(fields: Fields, fp: Uint8Array, plan: Uint8Array): Buffer {
  return createHash('sha256')
    .update(JSON.stringify(fields))
    .update(fp)
    .update(plan)
    .digest()
    .subarray(0, 16);
}

/**
 * One session's plans: its own small cache first (no hashing, no SQLite), then the
 * point cache for its device; every plan the session settles goes to both.
 */
export class TieredPlans implements PlanLookup {
  constructor(
    private readonly session: PlanLookup,
    private readonly points: PointCache,
    private readonly scope: PlanScope,
  ) {}

  get(key: PlanKey): SettledPlan | undefined {
    return this.lookup(key, false);
  }

  peek(key: PlanKey): SettledPlan | undefined {
    return this.lookup(key, true);
  }

  /** No closure per call: one per message showed under tsx (the bench runs the proxy so). */
  private lookup(key: PlanKey, memoryOnly: boolean): SettledPlan | undefined {
    const plan = this.session.get(key);
    if (plan !== undefined) return plan;
    const found = memoryOnly ? this.points.peek(this.scope, key) : this.points.get(this.scope, key);
    if (found !== undefined) this.session.set(key, found);
    return found;
  }

  set(key: PlanKey, plan: SettledPlan): void {
    this.session.set(key, plan);
    this.points.set(this.scope, key, plan);
  }
}
