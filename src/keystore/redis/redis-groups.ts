/**
 * The Redis adapter's mailbox group history and rotation (group-rotation.ts). The former
 * groups are a JSON field of the user hash (`formerGroups`: [{groupId, certificate}]),
 * so the rotation is one user-slot script (scripts.ts `rgRotateGroup`). The adapter
 * reads, checks and wraps; the script applies only if the group, the history and the
 * active devices are still what was read, else the change is refused as stale.
 */
import { KeyStoreUnavailableError, NotFoundError, StaleStateError } from '../errors.js';
import {
  decodePending,
  decodeRekey,
  encodePending,
  encodeRekey,
  type PendingRotation,
  type RekeyRequest,
  type RekeyStore,
} from '../rekey.js';
import { encodeEventBatch } from '../events.js';
import {
  checkRotation,
  planRotation,
  type GroupRotation,
  type GroupStore,
  type MailboxGroup,
} from '../group-rotation.js';
import type { GatewayKey } from '../key-wrapping.js';
import type { Device, KeyStoreEvent, User } from '../types.js';
import { normaliseAddress } from '../validate.js';
import { b64, mapError } from './codec.js';
import type { RedisClient } from './connect.js';
import { rkField, USER_KEY, userKeys } from './keys.js';
import type { ScriptName } from './scripts.js';

/** KEYS: user hash, rotation string, rekey hash. ARGV: fromGroupId, record, ttl ms. */
const START = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'enrolment') ~= 'enrolled' then
  return 'E_NOT_FOUND'
end
if redis.call('HGET', KEYS[1], 'groupId') ~= ARGV[1] then return 'E_CHANGED' end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 'OK'`;

/** KEYS: rotation string, rekey hash. ARGV: the rotation record read, id, request record. */
const PUT_REKEY = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'E_CHANGED' end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'hash' then return redis.error_reply('E_CORRUPT rekey key type') end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
return 'OK'`;

export function defineRekeyScripts(client: RedisClient): void {
  client.defineCommand('rgStartRotation', { numberOfKeys: 3, lua: START });
  client.defineCommand('rgPutRekey', { numberOfKeys: 2, lua: PUT_REKEY });
}

export interface RedisGroupDeps {
  client: RedisClient;
  key: GatewayKey;
  prefix: string;
  channel: string;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  script: (name: ScriptName, address: string, args: Array<string | Buffer>) => Promise<string>;
  getUser: (address: string) => Promise<User | null>;
  listActiveDevices: (address: string) => Promise<Device[]>;
  now: () => number;
}

type ScriptCall = (...args: Array<string | Buffer>) => Promise<unknown>;

interface StoredGroup {
  groupId: string;
  certificate: string;
}

function parseFormer(json: string | null): StoredGroup[] {
  if (json === null || json === '') return [];
  const parsed = JSON.parse(json) as unknown;
  if (!Array.isArray(parsed)) throw new KeyStoreUnavailableError('corrupt formerGroups field');
  return parsed as StoredGroup[];
}

export class RedisGroups implements GroupStore, RekeyStore {
  constructor(private readonly deps: RedisGroupDeps) {}

  async #formerJson(address: string): Promise<string | null> {
    const k = userKeys(this.deps.prefix, address);
    return this.deps.run(() => this.deps.client.hget(k[USER_KEY.user]!, 'formerGroups'));
  }

  async rotateGroup(address: string, input: GroupRotation): Promise<User> {
    const normal = normaliseAddress(address);
    const rotation = checkRotation(input);
    const newId = rotation.group.groupId;
    const user = await this.deps.getUser(normal);
    if (user === null || user.owner === null)
      throw new NotFoundError('user', `no enrolled user ${normal}`);
    const formerJson = await this.#formerJson(normal);
    const former = parseFormer(formerJson);
    const activeDevices = await this.deps.listActiveDevices(normal);
    const k = userKeys(this.deps.prefix, normal);
    const present = await this.deps.run(() =>
      Promise.all(
        activeDevices.map((d) => this.deps.client.hexists(k[USER_KEY.rk]!, rkField(newId, d.id))),
      ),
    );
    const alreadyKeyed = new Set(activeDevices.filter((_, i) => present[i] === 1).map((d) => d.id));
    const wrapped = planRotation(
      { user, formerGroupIds: former.map((g) => g.groupId), activeDevices, alreadyKeyed },
      rotation,
      this.deps.key,
    );
    const next: StoredGroup[] = [
      ...former,
      { groupId: user.owner.groupId, certificate: b64(user.owner.groupCertificate) },
    ];
    const byId = new Map(activeDevices.map((d) => [d.id, d]));
    const events: KeyStoreEvent[] = [...wrapped.keys()].map((id) => ({
      type: 'key-added',
      address: normal,
      id,
      deviceId: byId.get(id)!.deviceId,
      groupId: newId,
    }));
    const reply = await this.deps.script('rgRotateGroup', normal, [
      rotation.fromGroupId,
      newId,
      b64(rotation.group.certificate),
      formerJson ?? '',
      JSON.stringify(next),
      rotation.profile,
      this.deps.channel,
      encodeEventBatch(events),
      JSON.stringify(activeDevices.map((d) => d.id)),
      ...[...wrapped].flatMap(([id, key]) => [id, key]),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no enrolled user ${normal}`);
    if (reply === 'E_CHANGED')
      throw new StaleStateError('the mailbox or its devices changed meanwhile; read again');
    // The pending state of a full rotation now reads as absent (its group is gone); drop it.
    await this.deps
      .run(() => this.deps.client.del(...this.#rekeyKeys(normal)))
      .catch(() => undefined);
    const after = await this.deps.getUser(normal);
    if (after === null) throw new NotFoundError('user', `no user ${normal}`);
    return after;
  }

  async formerGroups(address: string): Promise<MailboxGroup[]> {
    try {
      return parseFormer(await this.#formerJson(normaliseAddress(address))).map((g) => ({
        groupId: g.groupId,
        certificate: new Uint8Array(Buffer.from(g.certificate, 'base64')),
      }));
    } catch (error) {
      throw mapError(error);
    }
  }

  // --- a full rotation waiting for the devices (rekey.ts) ---

  /** `<p>{u:A}:rotation` (the pending rotation, JSON, with a TTL) and `<p>{u:A}:rekey`. */
  #rekeyKeys(address: string): [string, string] {
    const base = `${this.deps.prefix}{u:${address}}:`;
    return [`${base}rotation`, `${base}rekey`];
  }

  #call(name: string): ScriptCall {
    const client = this.deps.client as unknown as Record<string, ScriptCall>;
    return (...args) => client[name]!.call(this.deps.client, ...args);
  }

  async #pendingRecord(
    address: string,
  ): Promise<{ record: string | null; pending: PendingRotation | null }> {
    const [rotation] = this.#rekeyKeys(address);
    const user = userKeys(this.deps.prefix, address)[USER_KEY.user]!;
    const [groupId, record] = await this.deps.run(() =>
      Promise.all([this.deps.client.hget(user, 'groupId'), this.deps.client.get(rotation)]),
    );
    return { record, pending: decodePending(record, groupId, this.deps.now()) };
  }

  async startRotation(
    address: string,
    input: Pick<PendingRotation, 'fromGroupId' | 'group' | 'profile'>,
    ttlMs: number,
  ): Promise<PendingRotation> {
    const normal = normaliseAddress(address);
    const { record, pending } = encodePending(input, this.deps.now(), ttlMs);
    const user = userKeys(this.deps.prefix, normal)[USER_KEY.user]!;
    const reply = String(
      await this.deps.run(() =>
        this.#call('rgStartRotation')(
          user,
          ...this.#rekeyKeys(normal),
          pending.fromGroupId,
          record,
          String(ttlMs),
        ),
      ),
    );
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no enrolled user ${normal}`);
    if (reply === 'E_CHANGED')
      throw new StaleStateError('the mailbox was rotated meanwhile (stale group id)');
    return pending;
  }

  async pendingRotation(address: string): Promise<PendingRotation | null> {
    return (await this.#pendingRecord(normaliseAddress(address))).pending;
  }

  async cancelRotation(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    await this.deps.run(() => this.deps.client.del(...this.#rekeyKeys(normal)));
  }

  async putRekeyRequest(address: string, request: Omit<RekeyRequest, 'created'>): Promise<void> {
    const normal = normaliseAddress(address);
    const encoded = encodeRekey(request, this.deps.key, this.deps.now());
    const { record, pending } = await this.#pendingRecord(normal);
    if (pending === null || pending.group.groupId !== request.groupId)
      throw new StaleStateError('no rotation to this group is pending');
    if (!(await this.deps.listActiveDevices(normal)).some((d) => d.id === request.id))
      throw new NotFoundError('device', `no active device ${request.id} of ${normal}`);
    const reply = String(
      await this.deps.run(() =>
        this.#call('rgPutRekey')(...this.#rekeyKeys(normal), record!, request.id, encoded),
      ),
    );
    if (reply === 'E_CHANGED') throw new StaleStateError('the pending rotation changed meanwhile');
  }

  async rekeyRequests(address: string): Promise<RekeyRequest[]> {
    const normal = normaliseAddress(address);
    const { pending } = await this.#pendingRecord(normal);
    if (pending === null) return [];
    const all = await this.deps.run(() => this.deps.client.hgetall(this.#rekeyKeys(normal)[1]));
    const active = new Set((await this.deps.listActiveDevices(normal)).map((d) => d.id));
    return Object.values(all)
      .map((record) => decodeRekey(record, this.deps.key))
      .filter((r) => r.groupId === pending.group.groupId && active.has(r.id))
      .sort((a, b) => a.created - b.created);
  }

  async removeRekeyRequest(address: string, id: string): Promise<void> {
    const normal = normaliseAddress(address);
    await this.deps.run(() => this.deps.client.hdel(this.#rekeyKeys(normal)[1], id));
  }
}
