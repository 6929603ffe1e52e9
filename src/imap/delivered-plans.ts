/**
 * Whole recrypt plans computed at delivery, for BODY[] (docs/design.md §4): with the
 * points alone (delivered-points.ts) a first fetch still parses the CMS prefix (headers,
 * base64, DER) to find E, about as much CPU as the store spends serving a 20 KiB message.
 * Here the MX side also keeps, per device, the edits relative to the start of the body,
 * found at fetch by a digest of the body's first 512 bytes: the proxy hashes those
 * instead of parsing.
 *
 * Safety: the key names the device's keys (`keysFingerprint`: its identifier, encoding and
 * every rk; another device, a re-key, a revoked device find nothing) and a digest of the
 * body's first bytes; the entry holds the length `n` of the body bytes the edits lie in
 * and their SHA-256, checked on every use, so the edits are applied only to exactly the
 * bytes they were computed from (the store may add header fields: the body is what
 * counts). Anything else — another form, a short prefix, a mismatch — and the transform
 * plans as usual. Rows name owner and device for deletion (point-cache.ts forget*).
 *
 * Memory: the plans put or read lately are also kept decoded (`recent`, at most
 * RECENT_PLANS, least recently used dropped first), under the same key and with the same
 * check of the body bytes on every use, so that a first fetch in the process that computed
 * them at delivery costs two digests and a map lookup instead of a SQLite read and a
 * decode. The forget* calls and `clear` drop them with the rows.
 */
import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Edit } from '../recrypt/transform.js';
import { decodePlan, encodePlan } from './plan-codec.js';
import { WriteQueue } from './write-queue.js';

/**
 * Body bytes hashed to find an entry: enough to reach past the first originator point E
 * (random per message) of the envelopes the MX makes, so that envelopes of the same
 * layout (their first ~70 base64 characters are the same DER header) do not share a key.
 */
const LOOKUP_BYTES = 512;
/** Header section searched for its end, as the transform bounds it. */
const MAX_HEAD = 64 * 1024;
const DIGEST_BYTES = 16;
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Decoded plans kept in memory: a few hundred bytes each, so a few MB at most. */
export const RECENT_PLANS = 16_384;

export interface DeliveredPlanStats {
  hits: number;
  misses: number;
  stored: number;
}

interface Row {
  owner: string;
  device: string;
  entry: Buffer;
}

interface Pending extends Row {
  id: Buffer;
}

/** A plan as `lookup` uses it: the edits relative to the body, and what they apply to. */
interface Decoded {
  owner: string;
  device: string;
  /** Length of the body bytes the edits lie in, and their digest. */
  n: number;
  sum: Buffer;
  edits: readonly Edit[];
}

/** Start of the body: after the first empty line (CRLF), or -1. */
function bodyStart(message: Uint8Array): number {
  const view = Buffer.from(message.buffer, message.byteOffset, Math.min(message.length, MAX_HEAD));
  const at = view.indexOf(CRLFCRLF);
  return at === -1 ? -1 : at + 4;
}

/**
 * SHA-256 of `bytes`, truncated: one-shot `crypto.hash` where Node has it (20.12+), about
 * half the CPU of a Hash object for these few hundred bytes, hashed twice per lookup.
 */
const sha256: (bytes: Uint8Array) => Buffer =
  typeof crypto.hash === 'function'
    ? (bytes) => crypto.hash('sha256', bytes, 'buffer')
    : (bytes) => crypto.createHash('sha256').update(bytes).digest();

function digest(bytes: Uint8Array): Buffer {
  return sha256(bytes).subarray(0, DIGEST_BYTES);
}

export class DeliveredPlans {
  readonly stats: DeliveredPlanStats = { hits: 0, misses: 0, stored: 0 };
  private readonly select: Database.Statement<unknown[], Row>;
  private readonly insert: Database.Statement;
  private readonly pending: WriteQueue<Pending>;
  private readonly recent = new Map<string, Decoded>();

  constructor(
    private readonly db: Database.Database,
    private readonly recentPlans = RECENT_PLANS,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS delivered_plans (
      id BLOB NOT NULL UNIQUE, owner TEXT NOT NULL, device TEXT NOT NULL, entry BLOB NOT NULL)`);
    db.exec('CREATE INDEX IF NOT EXISTS delivered_plans_device ON delivered_plans (owner, device)');
    this.select = db.prepare<unknown[], Row>(
      'SELECT owner, device, entry FROM delivered_plans WHERE id = ?',
    );
    this.insert = db.prepare(
      'INSERT OR REPLACE INTO delivered_plans (id, owner, device, entry) VALUES (?, ?, ?, ?)',
    );
    this.pending = new WriteQueue<Pending>({
      delayMs: 100,
      flushAt: 256,
      write: (entry) => this.insert.run(entry.id, entry.owner, entry.device, entry.entry),
      transaction: (fn) => this.db.transaction(fn)(),
      guard: (fn) => this.guard(fn),
    });
  }

  /**
   * Keeps the BODY[] plan `edits` (offsets in `message`, whose first bytes are `message`)
   * for the device with keys fingerprint `fingerprint`. Queued; `flush` commits.
   */
  put(
    owner: string,
    device: string,
    fingerprint: Buffer,
    message: Uint8Array,
    edits: Edit[],
  ): void {
    const start = bodyStart(message);
    if (start === -1 || edits.length === 0) return;
    const last = edits[edits.length - 1]!;
    const n = last.offset + last.bytes.length - start;
    if (edits[0]!.offset < start || n > 0xffff) return;
    if (message.length < start + Math.max(n, LOOKUP_BYTES)) return;
    const sum = digest(message.subarray(start, start + n));
    const relative = edits.map((edit) => ({ offset: edit.offset - start, bytes: edit.bytes }));
    const head = Buffer.alloc(2);
    head.writeUInt16BE(n);
    const entry = Buffer.concat([head, sum, encodePlan({ kind: 'edits', edits: relative })]);
    const id = Buffer.concat([fingerprint, digest(message.subarray(start, start + LOOKUP_BYTES))]);
    const key = id.toString('latin1');
    this.remember(key, { owner, device, n, sum, edits: relative });
    this.pending.put(key, { owner, device, id, entry });
    this.stats.stored++;
  }

  /** The BODY[] edits for `prefix` (a message's first bytes) and these keys, if kept. */
  lookup(fingerprint: Buffer, prefix: Uint8Array): Edit[] | undefined {
    const start = bodyStart(prefix);
    if (start === -1 || prefix.length < start + LOOKUP_BYTES) return undefined;
    const id = Buffer.concat([fingerprint, digest(prefix.subarray(start, start + LOOKUP_BYTES))]);
    const key = id.toString('latin1');
    const kept = this.recent.get(key);
    const plan = kept ?? this.load(key, id);
    // The edits are applied only to the very bytes they were computed from. A plan in
    // memory is under the digest of its own message's first LOOKUP_BYTES (put computed
    // both from one message; a row read from the file got there only past this check), so
    // when its edits lie in those bytes the key's digest has already compared them.
    if (
      plan === undefined ||
      prefix.length < start + plan.n ||
      ((kept === undefined || plan.n > LOOKUP_BYTES) &&
        !digest(prefix.subarray(start, start + plan.n)).equals(plan.sum))
    ) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    this.remember(key, plan);
    return plan.edits.map((edit) => ({ offset: edit.offset + start, bytes: edit.bytes }));
  }

  forgetDevice(owner: string, device: string): void {
    this.drop((entry) => entry.owner === owner && entry.device === device);
    this.guard(() =>
      this.db
        .prepare('DELETE FROM delivered_plans WHERE owner = ? AND device = ?')
        .run(owner, device),
    );
  }

  forgetOwner(owner: string): void {
    this.drop((entry) => entry.owner === owner);
    this.guard(() => this.db.prepare('DELETE FROM delivered_plans WHERE owner = ?').run(owner));
  }

  clear(): void {
    this.pending.clear();
    this.recent.clear();
    this.guard(() => this.db.exec('DELETE FROM delivered_plans'));
  }

  /** Commits the queued plans now (the points' flush calls it too). */
  flush(): void {
    this.pending.flush();
  }

  /** Stops committing (the points' close, after their last flush). */
  stop(): void {
    this.pending.stop();
  }

  /** Rows beyond `max` go, oldest first (the points' eviction calls it). */
  evict(max: number): void {
    const { n } = this.db.prepare('SELECT count(*) AS n FROM delivered_plans').get() as {
      n: number;
    };
    if (n <= max) return;
    this.db
      .prepare(
        'DELETE FROM delivered_plans WHERE rowid IN (SELECT rowid FROM delivered_plans ORDER BY rowid LIMIT ?)',
      )
      .run(n - max);
  }

  /** A plan waiting to be committed or stored, decoded; undefined if absent or damaged. */
  private load(key: string, id: Buffer): Decoded | undefined {
    const row = this.pending.get(key) ?? this.guard(() => this.select.get(id));
    if (row === undefined) return undefined;
    const { owner, device, entry } = row;
    if (entry.length < 2 + DIGEST_BYTES) return undefined;
    const plan = decodePlan(entry.subarray(2 + DIGEST_BYTES));
    if (plan === null || plan.kind !== 'edits') return undefined;
    // Owner and device kept with it, so that forget* drops it with its row.
    return {
      owner,
      device,
      n: entry.readUInt16BE(0),
      sum: entry.subarray(2, 2 + DIGEST_BYTES),
      edits: plan.edits,
    };
  }

  private drop(match: (entry: { owner: string; device: string }) => boolean): void {
    this.pending.drop(match);
    for (const [key, plan] of this.recent) if (match(plan)) this.recent.delete(key);
  }

  private remember(key: string, plan: Decoded): void {
    this.recent.delete(key);
    this.recent.set(key, plan);
    if (this.recent.size > this.recentPlans) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }

  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch {
      return undefined;
    }
  }
}
