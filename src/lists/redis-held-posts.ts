/**
 * Held posts of moderated lists in Redis (docs/lists.md "Moderation"), when the key store
 * is Redis, so that a post held through one gateway process is listed, approved or
 * rejected through any other. The post is kept exactly as the file store keeps it: the
 * S/MIME bytes to the list group (the gateway cannot read them) and a record (envelope
 * sender, size, time received, digest). Per list, under the list's hash tag (one Cluster
 * slot, so a hold or a removal is one transaction):
 *
 *   <p>{l:<list>}:held       hash  id → record JSON
 *   <p>{l:<list>}:held-msg   hash  id → the post's bytes
 *   <p>{l:<list>}:held-seq   string  order of posts received in one millisecond
 *   <p>{l:<list>}:held-claim:<id>  string  the process moderating the post now (with a TTL)
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../keystore/redis/connect.js';
import {
  HeldPostIdError,
  isHeldPostId,
  parseRecord,
  publicPost,
  type StoredRecord,
} from './held-posts.js';
import type { HeldPost, HeldPostStore } from './ports.js';

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface RedisHeldPostStoreOptions {
  /** A connected client; the caller closes it. */
  client: RedisClient;
  /** The key store's prefix (default 'recrypt:'). */
  prefix?: string;
  logger?: Logger;
  clock?: () => number;
}

export class RedisHeldPostStore implements HeldPostStore {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly clock: () => number;

  constructor(private readonly options: RedisHeldPostStoreOptions) {
    this.client = options.client;
    this.prefix = options.prefix ?? 'recrypt:';
    this.clock = options.clock ?? Date.now;
  }

  private key(list: string, name: string): string {
    return `${this.prefix}{l:${list}}:${name}`;
  }

  async hold(list: string, mailFrom: string, ciphertext: Uint8Array): Promise<HeldPost> {
    const address = list.trim().toLowerCase();
    if (address === '') throw new RangeError('list: empty address');
    const id = randomBytes(16).toString('hex');
    const sequence = await this.client.incr(this.key(address, 'held-seq'));
    const record: StoredRecord = {
      id,
      list: address,
      mailFrom,
      bytes: ciphertext.length,
      received: this.clock(),
      sequence,
      sha256: createHash('sha256').update(ciphertext).digest('hex'),
    };
    // One transaction: the post exists with its bytes, or not at all.
    const results = await this.client
      .multi()
      .hset(this.key(address, 'held-msg'), id, Buffer.from(ciphertext))
      .hset(this.key(address, 'held'), id, JSON.stringify(record))
      .exec();
    const failed = results?.find(([error]) => error !== null);
    if (results === null || failed !== undefined)
      throw failed?.[0] ?? new Error('held post write was discarded');
    return publicPost(record);
  }

  async list(list: string): Promise<HeldPost[]> {
    const address = list.trim().toLowerCase();
    const entries = await this.client.hgetall(this.key(address, 'held'));
    const records: StoredRecord[] = [];
    for (const [id, text] of Object.entries(entries)) {
      const record = isHeldPostId(id) ? parseRecord(text, id, address) : null;
      if (record === null) {
        this.skipped(address, id, 'record does not parse');
        continue;
      }
      const size = await this.client.hstrlen(this.key(address, 'held-msg'), id);
      if (size !== record.bytes) {
        this.skipped(address, id, 'message missing or of another size');
        continue;
      }
      records.push(record);
    }
    records.sort((a, b) => a.received - b.received || a.sequence - b.sequence);
    return records.map(publicPost);
  }

  async get(list: string, id: string): Promise<{ post: HeldPost; message: Buffer } | null> {
    const address = list.trim().toLowerCase();
    if (!isHeldPostId(id)) throw new HeldPostIdError();
    const [text, message] = await Promise.all([
      this.client.hget(this.key(address, 'held'), id),
      this.client.hgetBuffer(this.key(address, 'held-msg'), id),
    ]);
    if (text === null) return null;
    const record = parseRecord(text, id, address);
    if (record === null) {
      this.skipped(address, id, 'record does not parse');
      return null;
    }
    if (
      message === null ||
      message.length !== record.bytes ||
      createHash('sha256').update(message).digest('hex') !== record.sha256
    ) {
      this.skipped(address, id, 'message missing or differs from its record');
      return null;
    }
    return { post: publicPost(record), message };
  }

  async remove(list: string, id: string): Promise<void> {
    const address = list.trim().toLowerCase();
    if (!isHeldPostId(id)) throw new HeldPostIdError();
    await this.client
      .multi()
      .hdel(this.key(address, 'held'), id)
      .hdel(this.key(address, 'held-msg'), id)
      .exec();
  }

  /**
   * Marks the post as being moderated by this process for `ms` (approve delivers, then
   * removes): a second approval through another process meanwhile gets null, not a
   * second delivery. The returned function gives the claim back.
   */
  async claim(list: string, id: string, ms: number): Promise<(() => Promise<void>) | null> {
    const address = list.trim().toLowerCase();
    if (!isHeldPostId(id)) throw new HeldPostIdError();
    const key = this.key(address, `held-claim:${id}`);
    const token = randomBytes(12).toString('hex');
    if ((await this.client.set(key, token, 'PX', ms, 'NX')) !== 'OK') return null;
    return async () => {
      await this.client.eval(RELEASE, 1, key, token);
    };
  }

  private skipped(list: string, id: string, reason: string): void {
    this.options.logger?.warn(
      { held: `${this.key(list, 'held')} ${id}`, reason },
      'held post skipped',
    );
  }
}
