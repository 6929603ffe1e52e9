/**
 * Recrypted points computed at delivery (docs/design.md §4): when the MX has stored a
 * copy, it computes E′ = ±rk·E for each current device of the recipient off the SMTP
 * reply's path (adapters/points-at-delivery.ts) and keeps it here; the proxy's first
 * fetch of the message then finds E′ by E instead of multiplying, and writes its usual
 * per-UID plan (point-cache.ts). The MX cannot key by UID (LMTP does not return it), but
 * the proxy reads E from the CMS prefix anyway, so E is the key.
 *
 * Key: (a tag of the recryption key, SHA-256 of E). The tag is a one-way,
 * domain-separated digest of rk alone (E′ depends on nothing else): another device, or
 * this device after a re-key, has another rk and so another tag, and finds nothing; a
 * revoked device has no rk left to form its tag with. Rows also name the owner and
 * device so that revocation, removal and key changes delete them (point-cache.ts calls
 * `forget*`). Nothing here is secret: E and E′ are in what the device receives.
 *
 * Same table discipline as the point cache: writes queued and committed together, a
 * bound on rows (oldest dropped), the entry checked against its key on every read, and
 * every SQLite failure a miss (the proxy multiplies), never a failed fetch.
 *
 * `plans` (delivered-plans.ts, same file, same commits and deletions) keeps the device's
 * whole BODY[] plan as well, so that a first fetch of BODY[] skips even the parse.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Edit, PointSource } from '../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../recrypt/types.js';
import { DeliveredPlans } from './delivered-plans.js';
import { WriteQueue } from './write-queue.js';
import { liveFingerprint } from './plan-codec.js';

export interface DeliveredPointStats {
  /** Points the proxy took from here instead of multiplying. */
  hits: number;
  /** Points the proxy looked for and multiplied. */
  misses: number;
  /** Points computed at delivery and kept. */
  stored: number;
  /** Deliveries not precomputed (too much waiting, or the key store could not answer). */
  skipped: number;
  /** SQLite calls that failed (misses; writes dropped). */
  errors: number;
}

export const DEFAULT_MAX_POINTS = 1_000_000;
const FLUSH_DELAY_MS = 100;
const FLUSH_AT = 256;
const EVICT_CHECK_EVERY = 10_000;
const POINT_BYTES = 65;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const SUM_BYTES = 16;

interface Pending {
  owner: string;
  device: string;
  id: Buffer;
  /** E′ ‖ checksum(id, E′): what the row holds. */
  entry: Buffer;
}

export class DeliveredPoints {
  readonly stats: DeliveredPointStats = { hits: 0, misses: 0, stored: 0, skipped: 0, errors: 0 };
  /** Whole BODY[] plans, found by a digest of the body's first bytes (delivered-plans.ts). */
  readonly plans: DeliveredPlans;
  private readonly select: Database.Statement<unknown[], { point: Buffer }>;
  private readonly insert: Database.Statement;
  private readonly pending: WriteQueue<Pending>;
  private readonly tags = new Map<bigint, Buffer>();
  private closed = false;

  /** Uses `db` (the point cache's file), making its own table there. */
  constructor(
    private readonly db: Database.Database,
    private readonly maxPoints = DEFAULT_MAX_POINTS,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS delivered (
      id BLOB NOT NULL UNIQUE, owner TEXT NOT NULL, device TEXT NOT NULL, point BLOB NOT NULL)`);
    db.exec('CREATE INDEX IF NOT EXISTS delivered_device ON delivered (owner, device)');
    this.select = db.prepare<unknown[], { point: Buffer }>(
      'SELECT point FROM delivered WHERE id = ?',
    );
    this.insert = db.prepare(
      'INSERT OR REPLACE INTO delivered (id, owner, device, point) VALUES (?, ?, ?, ?)',
    );
    this.plans = new DeliveredPlans(db);
    this.pending = new WriteQueue<Pending>({
      delayMs: FLUSH_DELAY_MS,
      flushAt: FLUSH_AT,
      write: (entry) => this.insert.run(entry.id, entry.owner, entry.device, entry.entry),
      transaction: (fn) => this.db.transaction(fn)(),
      guard: (fn) => this.guard(fn),
      evictEvery: EVICT_CHECK_EVERY,
      evict: () => {
        this.evict();
        this.plans.evict(this.maxPoints);
      },
    });
  }

  /** The proxy's view of the whole plans kept for a device with these (live) keys. */
  planSource(keys: DeviceRecryptKeys): (prefix: Uint8Array) => Edit[] | undefined {
    const fingerprint = liveFingerprint(keys);
    return (prefix) => (this.closed ? undefined : this.plans.lookup(fingerprint(), prefix));
  }

  /** Keeps a device's BODY[] plan made at delivery (see DeliveredPlans.put). */
  putPlan(
    owner: string,
    device: string,
    fingerprint: Buffer,
    message: Uint8Array,
    edits: Edit[],
  ): void {
    if (this.closed) return;
    this.plans.put(owner, device, fingerprint, message, edits);
  }

  /** The proxy's view for one device: products kept for any of its keys, looked up by E. */
  source(): PointSource {
    return {
      known: (point, rk) => {
        const found = this.lookup(point, rk);
        if (found === undefined) this.stats.misses++;
        else this.stats.hits++;
        return found;
      },
    };
  }

  /** What the MX's precompute hands the transform: every product it makes is kept. */
  recorder(owner: string, device: string): PointSource {
    return {
      known: () => undefined,
      computed: (point, rk, recrypted) => this.put(owner, device, point, rk, recrypted),
    };
  }

  /** Keeps `recrypted` = ±rk·`point` for `device` of `owner` (committed shortly). */
  put(owner: string, device: string, point: Uint8Array, rk: bigint, recrypted: Uint8Array): void {
    if (this.closed || recrypted.length !== POINT_BYTES) return;
    const id = this.idOf(point, rk);
    const entry = Buffer.concat([recrypted, checksum(id, recrypted)]);
    this.stats.stored++;
    this.pending.put(id.toString('latin1'), { owner, device, id, entry });
  }

  /** ±rk·`point` if it was computed at delivery (pending or committed). */
  lookup(point: Uint8Array, rk: bigint): Uint8Array | undefined {
    if (this.closed) return undefined;
    const id = this.idOf(point, rk);
    const queued = this.pending.get(id.toString('latin1'));
    const entry = queued?.entry ?? this.guard(() => this.select.get(id))?.point;
    if (entry === undefined || entry.length !== POINT_BYTES + SUM_BYTES) return undefined;
    const recrypted = entry.subarray(0, POINT_BYTES);
    // A row damaged or copied under another key is not served: the proxy multiplies.
    return checksum(id, recrypted).equals(entry.subarray(POINT_BYTES)) ? recrypted : undefined;
  }

  forgetDevice(owner: string, device: string): void {
    if (!this.closed) this.plans.forgetDevice(owner, device);
    this.drop((entry) => entry.owner === owner && entry.device === device);
    this.guard(() =>
      this.db.prepare('DELETE FROM delivered WHERE owner = ? AND device = ?').run(owner, device),
    );
  }

  forgetOwner(owner: string): void {
    if (!this.closed) this.plans.forgetOwner(owner);
    this.drop((entry) => entry.owner === owner);
    this.guard(() => this.db.prepare('DELETE FROM delivered WHERE owner = ?').run(owner));
  }

  clear(): void {
    if (!this.closed) this.plans.clear();
    this.pending.clear();
    this.guard(() => this.db.exec('DELETE FROM delivered'));
  }

  /** Rows kept (committed ones). */
  size(): number {
    this.flush();
    return (this.db.prepare('SELECT count(*) AS n FROM delivered').get() as { n: number }).n;
  }

  flush(): void {
    if (!this.closed) this.pending.flush(() => this.plans.flush());
  }

  /** Commits what is queued; the caller closes the database. */
  close(): void {
    this.flush();
    this.pending.stop();
    this.plans.stop();
    this.closed = true;
  }

  /** tag(rk) ‖ SHA-256(tag ‖ E)[0..16): binds the row to both. */
  private idOf(point: Uint8Array, rk: bigint): Buffer {
    const tag = this.tagOf(rk);
    const digest = createHash('sha256').update(tag).update(point).digest();
    return Buffer.concat([tag, digest.subarray(0, KEY_BYTES - TAG_BYTES)]);
  }

  private tagOf(rk: bigint): Buffer {
    let tag = this.tags.get(rk);
    if (tag === undefined) {
      tag = createHash('sha256')
        .update('recrypt-gateway delivered point v1\u0000')
        .update(rk.toString(16))
        .digest()
        .subarray(0, TAG_BYTES);
      // Keys of the devices seen lately; a bound keeps a long-running gateway small.
      if (this.tags.size >= 4096) this.tags.clear();
      this.tags.set(rk, tag);
    }
    return tag;
  }

  private drop(match: (entry: Pending) => boolean): void {
    this.pending.drop(match);
  }

  private evict(): void {
    const { n } = this.db.prepare('SELECT count(*) AS n FROM delivered').get() as { n: number };
    if (n <= this.maxPoints) return;
    this.db
      .prepare(
        'DELETE FROM delivered WHERE rowid IN (SELECT rowid FROM delivered ORDER BY rowid LIMIT ?)',
      )
      .run(n - this.maxPoints);
  }

  private guard<T>(fn: () => T): T | undefined {
    if (this.closed) return undefined;
    try {
      return fn();
    } catch {
      this.stats.errors++;
      return undefined;
    }
  }
}

function checksum(id: Uint8Array, point: Uint8Array): Buffer {
  return createHash('sha256').update(id).update(point).digest().subarray(0, SUM_BYTES);
}
