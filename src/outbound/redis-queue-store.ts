/**
 * The outbound queue in Redis, shared by every gateway process on that Redis
 * (docs/outbound.md "Several gateway processes"). All keys carry the hash tag `{q}`, so
 * in a Cluster they sit in one slot and each change below is one atomic script:
 *
 *   <p>{q}:jobs      hash  id → job record (the same JSON as meta.json on disk)
 *   <p>{q}:msgs      hash  id → the exact bytes to send (ciphertext, as queued)
 *   <p>{q}:pending   zset  committed job id → next attempt (ms): the shared schedule
 *   <p>{q}:prepared  zset  uncommitted job id → time written (swept when stale)
 *   <p>{q}:lease:<id>  string  the token of the process attempting the job, with a TTL
 *   <p>{q}:flush     string  an operator's flush request, taken by one process
 *   <p>{q}:quarantine, <p>{q}:quarantine-msgs  hash  unreadable jobs moved aside
 *
 * A process attempts a job only while it holds the job's lease (SET NX PX), renews it
 * while the attempt runs, and records the outcome only if no other process took the lease
 * meanwhile. A process that dies holding a lease loses it when the TTL runs out, and
 * another process attempts the job then.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../keystore/redis/connect.js';
import type { JobStore } from './job-store.js';
import {
  JOB_ID,
  headerBlock,
  jobMetaSchema,
  newJobMeta,
  type JobMeta,
  type JobState,
  type NewJob,
} from './queue-store.js';

const COMMIT = `
for i, id in ipairs(ARGV) do
  local at = redis.call('ZSCORE', KEYS[1], id)
  if at then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], at, id)
  elseif not redis.call('ZSCORE', KEYS[2], id) then
    return id
  end
end
return false`;

const ABORT = `
for i, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return 0`;

// KEYS: pending, jobs, msgs, lease. ARGV: id.
const REMOVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 0`;

// KEYS: pending, jobs, lease. ARGV: id, record, next attempt, our token.
// Written only while the job is pending and no other process holds its lease.
const UPDATE = `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1`;

// KEYS: lease. ARGV: token, ttl.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// KEYS: prepared, jobs, msgs. ARGV: cutoff.
const SWEEP = `
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for i, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return stale`;

// KEYS: pending, jobs, msgs, quarantine, quarantine-msgs. ARGV: name, target.
const QUARANTINE = `
redis.call('ZREM', KEYS[1], ARGV[1])
local record = redis.call('HGET', KEYS[2], ARGV[1])
local message = redis.call('HGET', KEYS[3], ARGV[1])
if record then redis.call('HSET', KEYS[4], ARGV[2], record) end
if message then redis.call('HSET', KEYS[5], ARGV[2], message) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 0`;

// KEYS: pending. ARGV: now.
const ALL_DUE = `
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for i, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[1], id) end
return #ids`;

export interface RedisQueueStoreOptions {
  /** A connected client; the caller closes it. */
  client: RedisClient;
  /** Key prefix, the key store's (default 'recrypt:'). */
  prefix?: string;
}

export class RedisQueueStore implements JobStore {
  readonly kind = 'redis' as const;
  readonly shared = true;
  private readonly client: RedisClient;
  private readonly base: string;
  /** This process's lease token: another process's lease is never renewed or released. */
  private readonly token = randomBytes(12).toString('hex');

  constructor(options: RedisQueueStoreOptions) {
    this.client = options.client;
    this.base = `${options.prefix ?? 'recrypt:'}{q}:`;
  }

  private key(name: string): string {
    return this.base + name;
  }

  private lease(id: string): string {
    return this.key(`lease:${id}`);
  }

  async write(jobs: NewJob[], into: 'pending' | 'prepared', now: number): Promise<JobMeta[]> {
    const written: JobMeta[] = jobs.map((job) => newJobMeta(job, now));
    if (written.length === 0) return written;
    const multi = this.client.multi();
    written.forEach((meta, i) => {
      multi.hset(this.key('msgs'), meta.id, Buffer.from(jobs[i]!.message));
      multi.hset(this.key('jobs'), meta.id, JSON.stringify(meta));
      multi.zadd(this.key(into), now, meta.id);
    });
    const results = await multi.exec();
    const failed = results?.find(([error]) => error !== null);
    if (results === null || failed !== undefined)
      throw failed?.[0] ?? new Error('outbound queue write was discarded');
    return written;
  }

  async commit(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const missing = (await this.client.eval(
      COMMIT,
      2,
      this.key('prepared'),
      this.key('pending'),
      ...ids,
    )) as string | null;
    if (missing !== null)
      throw new Error(
        `outbound job ${missing} is neither prepared nor pending (aborted, or swept as stale)`,
      );
  }

  async abort(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.client.eval(
      ABORT,
      3,
      this.key('prepared'),
      this.key('jobs'),
      this.key('msgs'),
      ...ids,
    );
  }

  async remove(id: string): Promise<void> {
    await this.client.eval(
      REMOVE,
      4,
      this.key('pending'),
      this.key('jobs'),
      this.key('msgs'),
      this.lease(id),
      id,
    );
  }

  async update(meta: JobMeta): Promise<void> {
    await this.client.eval(
      UPDATE,
      3,
      this.key('pending'),
      this.key('jobs'),
      this.lease(meta.id),
      meta.id,
      JSON.stringify(meta),
      meta.nextAttempt,
      this.token,
    );
  }

  listPending(): Promise<string[]> {
    return this.client.zrange(this.key('pending'), '0', '-1');
  }

  async schedule(): Promise<Map<string, number>> {
    const flat = await this.client.zrange(this.key('pending'), '0', '-1', 'WITHSCORES');
    const times = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) times.set(flat[i]!, Number(flat[i + 1]));
    return times;
  }

  async read(name: string): Promise<JobState> {
    if (!JOB_ID.test(name)) return { kind: 'corrupt', reason: 'not a job id' };
    const [text, size, at] = await Promise.all([
      this.client.hget(this.key('jobs'), name),
      this.client.hstrlen(this.key('msgs'), name),
      this.client.zscore(this.key('pending'), name),
    ]);
    if (at === null) return { kind: 'missing' };
    if (text === null) return { kind: 'corrupt', reason: 'no job record' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { kind: 'corrupt', reason: 'job record is not JSON' };
    }
    const result = jobMetaSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0]!;
      return { kind: 'corrupt', reason: `job record: ${issue.path.join('.')}: ${issue.message}` };
    }
    if (result.data.id !== name) return { kind: 'corrupt', reason: 'job record names another job' };
    if (size !== result.data.messageBytes)
      return {
        kind: 'corrupt',
        reason:
          size === 0
            ? 'no message'
            : `message is ${size} bytes, the record says ${result.data.messageBytes}`,
      };
    // The schedule in the sorted set is the truth (a flush changes it, not the record).
    return { kind: 'ok', meta: { ...result.data, nextAttempt: Number(at) } };
  }

  async messageSource(id: string): Promise<Buffer> {
    const message = await this.client.hgetBuffer(this.key('msgs'), id);
    if (message === null) throw new Error(`outbound job ${id}: message gone`);
    return message;
  }

  async readHeaders(id: string, limit = 64 * 1024): Promise<Buffer> {
    const message = await this.messageSource(id);
    return headerBlock(message.subarray(0, limit));
  }

  async moveToQuarantine(name: string, now: number): Promise<string> {
    const target = `${name}.${now}`;
    await this.client.eval(
      QUARANTINE,
      5,
      this.key('pending'),
      this.key('jobs'),
      this.key('msgs'),
      this.key('quarantine'),
      this.key('quarantine-msgs'),
      name,
      target,
    );
    return `redis ${this.key('quarantine')} ${target}`;
  }

  async sweepStale(staleMs: number): Promise<string[]> {
    const stale = (await this.client.eval(
      SWEEP,
      3,
      this.key('prepared'),
      this.key('jobs'),
      this.key('msgs'),
      Date.now() - staleMs,
    )) as string[];
    return stale.map((id) => `prepared/${id}`);
  }

  async takeFlushRequest(): Promise<boolean> {
    return (await this.client.del(this.key('flush'))) === 1;
  }

  async requestFlush(): Promise<void> {
    await this.client.set(this.key('flush'), '1');
  }

  async claim(id: string, leaseMs: number): Promise<boolean> {
    return (await this.client.set(this.lease(id), this.token, 'PX', leaseMs, 'NX')) === 'OK';
  }

  async renew(id: string, leaseMs: number): Promise<boolean> {
    return (await this.client.eval(RENEW, 1, this.lease(id), this.token, leaseMs)) === 1;
  }

  async release(id: string): Promise<void> {
    await this.client.eval(RELEASE, 1, this.lease(id), this.token);
  }

  async makeAllDue(now: number): Promise<void> {
    await this.client.eval(ALL_DUE, 1, this.key('pending'), now);
  }

  countPending(): Promise<number> {
    return this.client.zcard(this.key('pending'));
  }

  /** The client belongs to the caller. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
