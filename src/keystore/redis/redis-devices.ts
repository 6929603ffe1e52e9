/**
 * The Redis adapter's devices and their recryption keys. They live in the owner's slot
 * (`{u:<address>}`, keys.ts), so every change is one of the user scripts in scripts.ts,
 * run through the owning RedisKeyStore; reads of several hashes go in one MULTI so they
 * see one instant.
 */
import type { Scalar } from '../../recrypt/types.js';
import { DuplicateError, KeyStoreUnavailableError, NotFoundError } from '../errors.js';
import { encodeEventBatch } from '../events.js';
import { type GatewayKey, unwrapRecryptionKey } from '../key-wrapping.js';
import type { DeviceStore } from '../keystore.js';
import { checkRecordId, isRecordId, prepareDevice, wrapOne } from '../prepare.js';
import type { Device, KeyStoreEvent, NewDevice } from '../types.js';
import { checkDeviceName, normaliseAddress } from '../validate.js';
import { b64, mapError, type StoredDevice, toDevice } from './codec.js';
import type { RedisClient } from './connect.js';
import { rkField, USER_KEY, userKeys } from './keys.js';
import type { ScriptName } from './scripts.js';

export interface RedisDeviceDeps {
  client: RedisClient;
  key: GatewayKey;
  prefix: string;
  channel: string;
  now: () => number;
  // The adapter's own helpers, so users and devices map errors and call the user-slot
  // scripts (scripts.ts, one script set for both) the same way.
  /** Runs a Redis call with its errors mapped to the store's typed errors. */
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Runs one of the user-slot change scripts on `address`'s keys; its status reply. */
  script: (name: ScriptName, address: string, args: Array<string | Buffer>) => Promise<string>;
}

export class RedisDevices implements DeviceStore {
  constructor(private readonly deps: RedisDeviceDeps) {}

  #keys(address: string): string[] {
    return userKeys(this.deps.prefix, address);
  }

  async addDevice(input: NewDevice): Promise<Device> {
    const { device, wrappedKeys } = prepareDevice(input, this.deps.key, this.deps.now());
    const stored: StoredDevice = {
      id: device.id,
      ownerAddress: device.ownerAddress,
      name: device.name,
      certificate: b64(device.certificate),
      deviceId: device.deviceId,
      client: device.client,
      credentialHash: device.credentialHash,
      created: device.created,
    };
    const events: KeyStoreEvent[] = [...wrappedKeys.keys()].map((groupId) => ({
      type: 'key-added',
      address: device.ownerAddress,
      id: device.id,
      deviceId: device.deviceId,
      groupId,
    }));
    const pairs = [...wrappedKeys].flatMap(([groupId, wrapped]) => [
      rkField(groupId, device.id),
      wrapped,
    ]);
    const reply = await this.deps.script('rgAddDevice', device.ownerAddress, [
      device.id,
      device.name,
      device.deviceId,
      JSON.stringify(stored),
      this.deps.channel,
      encodeEventBatch(events),
      ...pairs,
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${device.ownerAddress}`);
    if (reply === 'E_DUP_DEVICE_ID')
      throw new DuplicateError('device-id', 'a device with this certificate exists');
    if (reply === 'E_DUP_DEVICE_NAME')
      throw new DuplicateError('device-name', `device name ${device.name} is taken`);
    return device;
  }

  async getDevice(address: string, id: string): Promise<Device | null> {
    const normal = normaliseAddress(address);
    if (!isRecordId(id)) return null;
    const k = this.#keys(normal);
    const [json, seen, revoked] = await this.deps.run(() =>
      Promise.all([
        this.deps.client.hget(k[USER_KEY.devices]!, id),
        this.deps.client.hget(k[USER_KEY.seen]!, id),
        this.deps.client.hget(k[USER_KEY.revoked]!, id),
      ]),
    );
    return json === null ? null : toDevice(json, seen, revoked);
  }

  async getDeviceByName(address: string, name: string): Promise<Device | null> {
    const normal = normaliseAddress(address);
    checkDeviceName(name);
    const id = await this.deps.run(() =>
      this.deps.client.hget(this.#keys(normal)[USER_KEY.names]!, name),
    );
    if (id === null) return null;
    const device = await this.getDevice(normal, id);
    // A revoke between the two reads: the name is no longer an active device's.
    return device !== null && device.revoked === null ? device : null;
  }

  async listDevices(address: string): Promise<Device[]> {
    const k = this.#keys(normaliseAddress(address));
    // One MULTI (one slot) so the three hashes are read at the same instant.
    const replies = await this.deps.run(() =>
      this.deps.client
        .multi()
        .hgetall(k[USER_KEY.devices]!)
        .hgetall(k[USER_KEY.seen]!)
        .hgetall(k[USER_KEY.revoked]!)
        .exec(),
    );
    if (replies === null) throw new KeyStoreUnavailableError('key store transaction aborted');
    for (const [err] of replies) if (err) throw mapError(err);
    const [devices, seen, revoked] = replies.map(([, value]) => value as Record<string, string>);
    return Object.entries(devices!)
      .map(([id, json]) => ({
        seq: (JSON.parse(json) as StoredDevice).seq ?? 0,
        device: toDevice(json, seen![id], revoked![id]),
      }))
      .sort((a, b) => a.seq - b.seq)
      .map((entry) => entry.device);
  }

  async listActiveDevices(address: string): Promise<Device[]> {
    return (await this.listDevices(address)).filter((d) => d.revoked === null);
  }

  async touchDevice(address: string, id: string, at?: number): Promise<void> {
    const normal = normaliseAddress(address);
    if (!isRecordId(id)) return;
    await this.deps.script('rgTouch', normal, [id, String(at ?? this.deps.now())]);
  }

  async revokeDevice(address: string, id: string): Promise<Device> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const before = await this.getDevice(normal, id);
    if (before === null) throw new NotFoundError('device', `no device ${id} of ${normal}`);
    if (before.revoked !== null) return before;
    const now = this.deps.now();
    const reply = await this.deps.script('rgRevokeDevice', normal, [
      id,
      before.name,
      String(now),
      this.deps.channel,
      encodeEventBatch([
        { type: 'device-revoked', address: normal, id, deviceId: before.deviceId },
      ]),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('device', `no device ${id} of ${normal}`);
    if (reply === 'ALREADY') return (await this.getDevice(normal, id))!;
    return { ...before, revoked: now };
  }

  async putRecryptionKey(address: string, id: string, groupId: string, rk: Scalar): Promise<void> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const device = await this.getDevice(normal, id);
    if (device === null || device.revoked !== null)
      throw new NotFoundError('device', `no active device ${id} of ${normal}`);
    const wrapped = wrapOne(this.deps.key, groupId, device.deviceId, rk);
    const reply = await this.deps.script('rgPutKey', normal, [
      id,
      rkField(groupId, id),
      wrapped,
      this.deps.channel,
      encodeEventBatch([
        { type: 'key-added', address: normal, id, deviceId: device.deviceId, groupId },
      ]),
    ]);
    if (reply === 'E_NOT_FOUND')
      throw new NotFoundError('device', `no active device ${id} of ${normal}`);
  }

  async keysForDevice(address: string, id: string): Promise<Map<string, Scalar>> {
    const normal = normaliseAddress(address);
    const keys = new Map<string, Scalar>();
    if (!isRecordId(id)) return keys;
    const k = this.#keys(normal);
    const replies = await this.deps.run(() =>
      this.deps.client
        .multi()
        .hget(k[USER_KEY.devices]!, id)
        .hexists(k[USER_KEY.revoked]!, id)
        .hgetallBuffer(k[USER_KEY.rk]!)
        .exec(),
    );
    if (replies === null) throw new KeyStoreUnavailableError('key store transaction aborted');
    for (const [err] of replies) if (err) throw mapError(err);
    const json = replies[0]![1] as string | null;
    const revoked = replies[1]![1] as number;
    const wrapped = replies[2]![1] as Record<string, Buffer>;
    if (json === null || revoked === 1) return keys;
    const deviceId = (JSON.parse(json) as StoredDevice).deviceId;
    const suffix = `|${id}`;
    for (const field of Object.keys(wrapped).sort()) {
      if (!field.endsWith(suffix)) continue;
      const groupId = field.slice(0, -suffix.length);
      keys.set(
        groupId,
        unwrapRecryptionKey(this.deps.key, wrapped[field]!, { groupId, targetId: deviceId }),
      );
    }
    return keys;
  }
}
