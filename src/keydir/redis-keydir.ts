/**
 * The harvested key directory in Redis, for gateways on a Redis key store (every process
 * sees what any process's MX harvested). Keys, under the key store's prefix, all with the
 * hash tag `{keydir}` so a Cluster keeps them in one slot:
 *
 *   <p>{keydir}:addr:<address>    hash  fingerprint → record (codec.ts)
 *   <p>{keydir}:domain:<domain>   set   addresses with a record
 *   <p>{keydir}:domains           set   domains with a record
 *
 * Two processes harvesting for one address at once may leave one certificate over the
 * cap until the next `remember` trims it.
 */
import type { RedisClient } from '../keystore/redis/connect.js';
import { decodeRecord, encodeRecord } from './codec.js';
import {
  byRecency,
  domainOfAddress,
  keptAfterAdding,
  type HarvestedCertificate,
  type KeyDirectory,
} from './types.js';

export interface RedisKeyDirectoryOptions {
  client: RedisClient;
  prefix: string;
  /** Closes the client too (a directory that opened its own connection). */
  ownsClient?: boolean;
  now?: () => number;
}

export class RedisKeyDirectory implements KeyDirectory {
  readonly #client: RedisClient;
  readonly #base: string;
  readonly #ownsClient: boolean;
  readonly #now: () => number;

  constructor(options: RedisKeyDirectoryOptions) {
    this.#client = options.client;
    this.#base = `${options.prefix}{keydir}:`;
    this.#ownsClient = options.ownsClient ?? false;
    this.#now = options.now ?? Date.now;
  }

  #addressKey(address: string): string {
    return `${this.#base}addr:${address}`;
  }

  #domainKey(domain: string): string {
    return `${this.#base}domain:${domain}`;
  }

  async #records(address: string): Promise<HarvestedCertificate[]> {
    const all = await this.#client.hgetall(this.#addressKey(address));
    return Object.values(all).flatMap((text) => decodeRecord(text) ?? []);
  }

  async remember(certificate: HarvestedCertificate, maxPerAddress: number): Promise<void> {
    await this.#client
      .multi()
      .hset(
        this.#addressKey(certificate.address),
        certificate.fingerprint,
        encodeRecord(certificate),
      )
      .sadd(this.#domainKey(certificate.domain), certificate.address)
      .sadd(`${this.#base}domains`, certificate.domain)
      .exec();
    const { drop } = keptAfterAdding(
      await this.#records(certificate.address),
      maxPerAddress,
      this.#now(),
    );
    if (drop.length > 0)
      await this.#client.hdel(
        this.#addressKey(certificate.address),
        ...drop.map((record) => record.fingerprint),
      );
  }

  async forAddress(address: string): Promise<HarvestedCertificate[]> {
    return (await this.#records(address.toLowerCase())).sort(byRecency);
  }

  async list(domain?: string): Promise<HarvestedCertificate[]> {
    const domains =
      domain === undefined
        ? await this.#client.smembers(`${this.#base}domains`)
        : [domain.toLowerCase()];
    const records: HarvestedCertificate[] = [];
    for (const name of domains)
      for (const address of await this.#client.smembers(this.#domainKey(name)))
        records.push(...(await this.#records(address)));
    return records.sort((a, b) => a.address.localeCompare(b.address) || byRecency(a, b));
  }

  async remove(address: string, fingerprint?: string): Promise<number> {
    const lower = address.toLowerCase();
    const key = this.#addressKey(lower);
    const removed =
      fingerprint === undefined
        ? await this.#client.hlen(key).then(async (n) => {
            await this.#client.del(key);
            return n;
          })
        : await this.#client.hdel(key, fingerprint.toLowerCase());
    if ((await this.#client.hlen(key)) === 0)
      await this.#client.srem(this.#domainKey(domainOfAddress(lower)), lower);
    return removed;
  }

  async close(): Promise<void> {
    if (this.#ownsClient) await this.#client.quit().catch(() => this.#client.disconnect());
  }
}
