/**
 * The Redis adapter's mailbox group history and rotation (group-rotation.ts). The former
 * groups are a JSON field of the user hash (`formerGroups`: [{groupId, certificate}]),
 * so the rotation is one user-slot script (scripts.ts `rgRotateGroup`). The adapter
 * reads, checks and wraps; the script applies only if the group, the history and the
 * active devices are still what was read, else the change is refused as stale.
 */
import { KeyStoreUnavailableError, NotFoundError, StaleStateError } from '../errors.js';
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

export interface RedisGroupDeps {
  client: RedisClient;
  key: GatewayKey;
  prefix: string;
  channel: string;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  script: (name: ScriptName, address: string, args: Array<string | Buffer>) => Promise<string>;
  getUser: (address: string) => Promise<User | null>;
  listActiveDevices: (address: string) => Promise<Device[]>;
}

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

export class RedisGroups implements GroupStore {
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
}
