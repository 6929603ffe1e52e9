/**
 * The Redis key store (single node, Sentinel or Cluster through ioredis). Changes are
 * Lua scripts over one user's keys (scripts.ts, keys.ts); notifications are Redis
 * pub/sub on a dedicated subscriber connection, so every gateway process on the same
 * Redis hears every change. Any failure to reach Redis becomes KeyStoreUnavailableError
 * within about a second (connect.ts).
 */
import type { Scalar } from '../../recrypt/types.js';
import {
  DuplicateError,
  KeyStoreUnavailableError,
  NotFoundError,
  TokenInvalidError,
} from '../errors.js';
import { decodeEventBatch, encodeEventBatch, EventHub } from '../events.js';
import { type GatewayKey, unwrapRecryptionKey } from '../key-wrapping.js';
import type { KeyStore } from '../keystore.js';
import {
  checkOwnerCertificates,
  checkRecordId,
  isRecordId,
  prepareDevice,
  wrapOne,
} from '../prepare.js';
import { hashToken, newEnrolmentToken } from '../tokens.js';
import type {
  Device,
  KeyStoreConfig,
  KeyStoreEvent,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
  User,
} from '../types.js';
import {
  checkDeviceName,
  checkDisplayName,
  checkOpaque,
  checkTtl,
  normaliseAddress,
} from '../validate.js';
import {
  createRedisClient,
  DEFAULT_TIMEOUTS,
  type RedisClient,
  type RedisTimeouts,
} from './connect.js';
import {
  DEFAULT_PREFIX,
  eventsChannel,
  nonceKey,
  rkField,
  USER_KEY,
  userKeys,
  usersSetKey,
} from './keys.js';
import { SCRIPT_KEYS, SCRIPTS, type ScriptName } from './scripts.js';
import { EventSubscriber } from './subscriber.js';
import type { ListGroup, ListUpdate, NewList } from '../list-types.js';
import { defineListScripts, RedisLists } from './redis-lists.js';
import { b64, mapError, type StoredDevice, toDevice, toUser } from './codec.js';

export interface RedisKeyStoreOptions {
  config: Exclude<KeyStoreConfig, { kind: 'sqlite' }>;
  gatewayKey: GatewayKey;
  /** Key and channel prefix, so several deployments (or tests) can share one Redis. */
  prefix?: string;
  clock?: () => number;
  timeouts?: RedisTimeouts;
  /** Connection errors (already retried in the background); for a logger. */
  onConnectionError?: (err: Error) => void;
}

export class RedisKeyStore implements KeyStore {
  readonly kind = 'redis' as const;
  readonly #client: RedisClient;
  readonly #subscriber: EventSubscriber;
  readonly #key: GatewayKey;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #now: () => number;
  readonly #hub = new EventHub();
  readonly #lists: RedisLists;

  private constructor(options: RedisKeyStoreOptions) {
    const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
    this.#client = createRedisClient(options.config, 'recrypt-commands', timeouts);
    this.#key = options.gatewayKey;
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#channel = eventsChannel(this.#prefix);
    this.#now = options.clock ?? Date.now;
    const onError = options.onConnectionError ?? (() => {});
    // Without a listener ioredis prints every reconnect failure to the console.
    this.#client.on('error', onError);
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.#client.defineCommand(name, { numberOfKeys: SCRIPT_KEYS, lua });
    }
    defineListScripts(this.#client);
    this.#lists = new RedisLists({
      client: this.#client,
      key: this.#key,
      prefix: this.#prefix,
      channel: this.#channel,
      now: this.#now,
      getUser: (address) => this.getUser(address),
    });
    this.#subscriber = new EventSubscriber(options.config, this.#channel, timeouts, {
      onMessage: (message) => {
        for (const event of decodeEventBatch(message)) this.#hub.emit(event);
      },
      onResync: () => this.#hub.emit({ type: 'resync' }),
      onError,
    });
  }

  /** Connects both connections and subscribes; KeyStoreUnavailableError if Redis is not there. */
  static async open(options: RedisKeyStoreOptions): Promise<RedisKeyStore> {
    const store = new RedisKeyStore(options);
    try {
      await Promise.all([store.#client.connect(), store.#subscriber.start()]);
      await store.#client.ping();
    } catch (err) {
      await store.close();
      throw mapError(err);
    }
    return store;
  }

  // --- lists (redis-lists.ts) ---
  createList = (list: NewList) => this.#lists.createList(list);
  getList = (address: string) => this.#lists.getList(address);
  listLists = () => this.#lists.listLists();
  updateList = (address: string, update: ListUpdate) => this.#lists.updateList(address, update);
  removeList = (address: string) => this.#lists.removeList(address);
  putListMember = (list: string, member: string, memberGroupId: string, rk: Scalar) =>
    this.#lists.putListMember(list, member, memberGroupId, rk);
  putRemoteListMember = (
    list: string,
    member: string,
    certificate: Uint8Array,
    memberGroupId: string,
    rk: Scalar,
  ) => this.#lists.putRemoteListMember(list, member, certificate, memberGroupId, rk);
  removeListMember = (list: string, member: string) => this.#lists.removeListMember(list, member);
  listMembers = (list: string) => this.#lists.listMembers(list);
  listsOfMember = (member: string) => this.#lists.listsOfMember(member);
  listKeysForMember = (member: string) => this.#lists.listKeysForMember(member);
  rotateList = (list: string, expected: string, next: ListGroup, delta: Scalar) =>
    this.#lists.rotateList(list, expected, next, delta);

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err);
    }
  }

  async #scriptReply(
    name: ScriptName,
    address: string,
    args: Array<string | Buffer>,
  ): Promise<unknown> {
    const call = (this.#client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[
      name
    ]!;
    return this.#run(() => call.call(this.#client, ...userKeys(this.#prefix, address), ...args));
  }

  async #script(name: ScriptName, address: string, args: Array<string | Buffer>): Promise<string> {
    return String(await this.#scriptReply(name, address, args));
  }

  /** A script's user hash reply (flat field/value array) as a User, or its error status. */
  #userFromReply(reply: unknown): User | string {
    if (!Array.isArray(reply)) return String(reply);
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) hash[String(reply[i])] = String(reply[i + 1]);
    const user = toUser(hash);
    if (user === null) throw new KeyStoreUnavailableError('key store returned an empty user');
    return user;
  }

  #keys(address: string): string[] {
    return userKeys(this.#prefix, address);
  }

  async addUser(user: NewUser): Promise<User> {
    const address = normaliseAddress(user.address);
    const displayName = checkDisplayName(user.displayName ?? '');
    const created = this.#now();
    // Index first: a crash after this leaves an entry listUsers skips (keys.ts).
    await this.#run(() => this.#client.sadd(usersSetKey(this.#prefix), address));
    const reply = await this.#script('rgAddUser', address, [address, displayName, String(created)]);
    if (reply === 'E_DUP_USER') throw new DuplicateError('user', `user ${address} exists`);
    return { address, displayName, enrolment: 'pending', owner: null, created };
  }

  async getUser(address: string): Promise<User | null> {
    const normal = normaliseAddress(address);
    const hash = await this.#run(() => this.#client.hgetall(this.#keys(normal)[USER_KEY.user]!));
    return toUser(hash);
  }

  async listUsers(): Promise<User[]> {
    const addresses = await this.#run(() => this.#client.smembers(usersSetKey(this.#prefix)));
    const users = await Promise.all(addresses.map((a) => this.getUser(a)));
    return users
      .filter((u): u is User => u !== null)
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  async removeUser(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    const reply = await this.#script('rgRemoveUser', normal, [
      this.#channel,
      encodeEventBatch([{ type: 'user-removed', address: normal }]),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
    await this.#run(() => this.#client.srem(usersSetKey(this.#prefix), normal));
  }

  async createEnrolmentToken(address: string, ttlMs: number): Promise<string> {
    const normal = normaliseAddress(address);
    checkTtl(ttlMs);
    const token = newEnrolmentToken();
    const reply = await this.#script('rgCreateToken', normal, [
      hashToken(token),
      String(this.#now() + ttlMs),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
    return token;
  }

  async enrol(address: string, token: string, owner: OwnerCertificates): Promise<User> {
    const normal = normaliseAddress(address);
    const c = checkOwnerCertificates(owner);
    const reply = this.#userFromReply(
      await this.#scriptReply('rgEnrol', normal, [
        hashToken(typeof token === 'string' ? token : ''),
        String(this.#now()),
        b64(c.ownerCaCertificate),
        b64(c.groupCertificate),
        c.groupId,
        b64(c.ownerKeySpki),
      ]),
    );
    if (typeof reply !== 'string') return reply;
    switch (reply) {
      case 'E_NOT_FOUND':
        throw new NotFoundError('user', `no user ${normal}`);
      case 'E_TOKEN_INVALID':
        throw new TokenInvalidError('invalid');
      case 'E_TOKEN_USED':
        throw new TokenInvalidError('used');
      case 'E_TOKEN_EXPIRED':
        throw new TokenInvalidError('expired');
    }
    throw new KeyStoreUnavailableError(`unexpected key store reply ${reply.slice(0, 40)}`);
  }

  async setOwnerCertificates(address: string, owner: OwnerCertificates): Promise<User> {
    const normal = normaliseAddress(address);
    const c = checkOwnerCertificates(owner);
    const reply = this.#userFromReply(
      await this.#scriptReply('rgSetOwner', normal, [
        b64(c.ownerCaCertificate),
        b64(c.groupCertificate),
        c.groupId,
        b64(c.ownerKeySpki),
      ]),
    );
    if (typeof reply !== 'string') return reply;
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
    if (reply === 'E_NOT_ENROLLED')
      throw new NotFoundError('user', `user ${normal} is not enrolled`);
    throw new KeyStoreUnavailableError(`unexpected key store reply ${reply.slice(0, 40)}`);
  }

  async addDevice(input: NewDevice): Promise<Device> {
    const { device, wrappedKeys } = prepareDevice(input, this.#key, this.#now());
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
    const reply = await this.#script('rgAddDevice', device.ownerAddress, [
      device.id,
      device.name,
      device.deviceId,
      JSON.stringify(stored),
      this.#channel,
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
    const [json, seen, revoked] = await this.#run(() =>
      Promise.all([
        this.#client.hget(k[USER_KEY.devices]!, id),
        this.#client.hget(k[USER_KEY.seen]!, id),
        this.#client.hget(k[USER_KEY.revoked]!, id),
      ]),
    );
    return json === null ? null : toDevice(json, seen, revoked);
  }

  async getDeviceByName(address: string, name: string): Promise<Device | null> {
    const normal = normaliseAddress(address);
    checkDeviceName(name);
    const id = await this.#run(() => this.#client.hget(this.#keys(normal)[USER_KEY.names]!, name));
    if (id === null) return null;
    const device = await this.getDevice(normal, id);
    // A revoke between the two reads: the name is no longer an active device's.
    return device !== null && device.revoked === null ? device : null;
  }

  async listDevices(address: string): Promise<Device[]> {
    const k = this.#keys(normaliseAddress(address));
    // One MULTI (one slot) so the three hashes are read at the same instant.
    const replies = await this.#run(() =>
      this.#client
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
    await this.#script('rgTouch', normal, [id, String(at ?? this.#now())]);
  }

  async revokeDevice(address: string, id: string): Promise<Device> {
    const normal = normaliseAddress(address);
    checkRecordId(id);
    const before = await this.getDevice(normal, id);
    if (before === null) throw new NotFoundError('device', `no device ${id} of ${normal}`);
    if (before.revoked !== null) return before;
    const now = this.#now();
    const reply = await this.#script('rgRevokeDevice', normal, [
      id,
      before.name,
      String(now),
      this.#channel,
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
    const wrapped = wrapOne(this.#key, groupId, device.deviceId, rk);
    const reply = await this.#script('rgPutKey', normal, [
      id,
      rkField(groupId, id),
      wrapped,
      this.#channel,
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
    const replies = await this.#run(() =>
      this.#client
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
        unwrapRecryptionKey(this.#key, wrapped[field]!, { groupId, targetId: deviceId }),
      );
    }
    return keys;
  }

  async putProfile(address: string, document: string): Promise<void> {
    const normal = normaliseAddress(address);
    checkOpaque(document, 'profile document', 256 * 1024);
    const reply = await this.#script('rgPutProfile', normal, [document]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
  }

  async getProfile(address: string): Promise<string | null> {
    const normal = normaliseAddress(address);
    return this.#run(() => this.#client.get(this.#keys(normal)[USER_KEY.profile]!));
  }

  async useNonce(scope: string, nonce: string, ttlMs: number): Promise<boolean> {
    checkOpaque(scope, 'nonce scope', 512);
    checkOpaque(nonce, 'nonce', 256);
    checkTtl(ttlMs);
    const key = nonceKey(this.#prefix, scope, nonce);
    const reply = await this.#run(() => this.#client.set(key, '1', 'PX', ttlMs, 'NX'));
    return reply === 'OK';
  }

  subscribe(listener: KeyStoreListener): () => void {
    return this.#hub.subscribe(listener);
  }

  async health(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  async close(): Promise<void> {
    this.#hub.clear();
    this.#client.disconnect();
    this.#subscriber.close();
  }
}
