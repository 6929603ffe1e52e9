/**
 * The Redis adapter's pending device pairings: one hash per user in the user's slot,
 * `<p>{u:A}:pairing` (id → JSON record from keystore/pairing.ts). It is not one of the
 * nine keys the user scripts take: `removeUser` deletes it after its script
 * (`forgetUser`; an add in between finds no user and stores nothing), it expires with its
 * last request (PEXPIREAT), and a record older than its user is never returned. The add
 * (count under the limit, then insert) and the approve (compare and set) are Lua
 * scripts, so they are atomic in a Cluster too.
 */
import { NotFoundError } from '../errors.js';
import type { GatewayKey } from '../key-wrapping.js';
import {
  approvedPairing,
  decodePairing,
  encodePairing,
  LimitError,
  type NewPairingRequest,
  type PairingRequest,
  type PairingStore,
  preparePairing,
} from '../pairing.js';
import { isRecordId } from '../prepare.js';
import { normaliseAddress } from '../validate.js';
import type { RedisClient } from './connect.js';
import { USER_KEY, userKeys } from './keys.js';

/** KEYS: user hash, pairing hash. ARGV: id, record, now, max, expires. */
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'E_NOT_FOUND' end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'hash' then return redis.error_reply('E_CORRUPT pairing key type') end
local now = tonumber(ARGV[3])
local live = 0
local latest = tonumber(ARGV[5])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local ok, record = pcall(cjson.decode, all[i + 1])
  local expires = ok and tonumber(record['expires']) or 0
  if expires <= now then redis.call('HDEL', KEYS[2], all[i])
  else
    live = live + 1
    if expires > latest then latest = expires end
  end
end
if live >= tonumber(ARGV[4]) then return 'E_LIMIT' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], latest)
return 'OK'`;

/** KEYS: pairing hash. ARGV: id, expected record, new record. */
const SWAP = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 'E_CHANGED' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 'OK'`;

export interface RedisPairingDeps {
  client: RedisClient;
  key: GatewayKey;
  prefix: string;
  now: () => number;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  /** The user's `created`, or null for no user. */
  userCreated: (address: string) => Promise<number | null>;
}

export class RedisPairings implements PairingStore {
  constructor(private readonly deps: RedisPairingDeps) {}

  #keys(address: string): { user: string; pairing: string } {
    const keys = userKeys(this.deps.prefix, address);
    const user = keys[USER_KEY.user]!;
    return { user, pairing: user.replace(/:user$/, ':pairing') };
  }

  async addPairingRequest(input: NewPairingRequest, maxPending: number): Promise<PairingRequest> {
    const now = this.deps.now();
    const { request, stored } = preparePairing(input, this.deps.key, now);
    const k = this.#keys(request.ownerAddress);
    const reply = await this.deps.run(
      () =>
        this.deps.client.eval(
          ADD,
          2,
          k.user,
          k.pairing,
          request.id,
          stored,
          now,
          maxPending,
          request.expires,
        ) as Promise<string>,
    );
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${request.ownerAddress}`);
    if (reply === 'E_LIMIT')
      throw new LimitError(`${request.ownerAddress} has too many pairing requests waiting`);
    return request;
  }

  /** Unexpired records (text and decoded) of the user as it exists now. */
  async #records(address: string): Promise<Array<{ text: string; request: PairingRequest }>> {
    const normal = normaliseAddress(address);
    const created = await this.deps.userCreated(normal);
    if (created === null) return [];
    const all = await this.deps.run(() => this.deps.client.hgetall(this.#keys(normal).pairing));
    const now = this.deps.now();
    return Object.values(all)
      .map((text) => ({ text, request: decodePairing(text, this.deps.key) }))
      .filter(({ request }) => request.expires > now && request.created >= created)
      .sort(
        (a, b) => a.request.created - b.request.created || a.request.id.localeCompare(b.request.id),
      );
  }

  async listPairingRequests(address: string): Promise<PairingRequest[]> {
    return (await this.#records(address)).map((r) => r.request);
  }

  async getPairingRequest(address: string, id: string): Promise<PairingRequest | null> {
    if (!isRecordId(id)) return null;
    return (await this.#records(address)).find((r) => r.request.id === id)?.request ?? null;
  }

  async approvePairingRequest(
    address: string,
    id: string,
    certificate: Uint8Array,
  ): Promise<PairingRequest> {
    const normal = normaliseAddress(address);
    const gone = () => new NotFoundError('pairing-request', `no pending pairing request ${id}`);
    const found = isRecordId(id)
      ? (await this.#records(normal)).find((r) => r.request.id === id)
      : undefined;
    if (found === undefined || found.request.approvedCertificate !== null) throw gone();
    const after = approvedPairing(found.request, certificate);
    const reply = await this.deps.run(
      () =>
        this.deps.client.eval(
          SWAP,
          1,
          this.#keys(normal).pairing,
          id,
          found.text,
          encodePairing(after, this.deps.key),
        ) as Promise<string>,
    );
    // Another approve (or a removal) got there first.
    if (reply !== 'OK') throw gone();
    return after;
  }

  /** Drops every request of a removed user (a user re-added in the same millisecond
   *  would otherwise still see them: `created` cannot tell the two apart). */
  async forgetUser(address: string): Promise<void> {
    await this.deps.run(() => this.deps.client.del(this.#keys(normaliseAddress(address)).pairing));
  }

  async removePairingRequest(address: string, id: string): Promise<boolean> {
    if (!isRecordId(id)) return false;
    const removed = await this.deps.run(() =>
      this.deps.client.hdel(this.#keys(normaliseAddress(address)).pairing, id),
    );
    return removed > 0;
  }
}
