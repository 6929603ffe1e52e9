/**
 * The Redis key store (single node, Sentinel or Cluster through ioredis): connections,
 * users, enrolment, profiles, nonces and notifications here; devices in
 * redis-devices.ts and lists in redis-lists.ts, which this class composes. Changes are
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
import type { GatewayKey } from '../key-wrapping.js';
import type { KeyStore } from '../keystore.js';
import { checkOwnerCertificates } from '../prepare.js';
import { hashToken, newEnrolmentToken } from '../tokens.js';
import type {
  Device,
  KeyStoreConfig,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
  User,
} from '../types.js';
import { checkDisplayName, checkOpaque, checkTtl, normaliseAddress } from '../validate.js';
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
  USER_KEY,
  userKeys,
  usersSetKey,
} from './keys.js';
import { SCRIPT_KEYS, SCRIPTS, type ScriptName } from './scripts.js';
import { EventSubscriber } from './subscriber.js';
import type { ListGroup, ListUpdate, NewList } from '../list-types.js';
import { defineListScripts, RedisLists } from './redis-lists.js';
import { RedisDevices } from './redis-devices.js';
import { RedisPairings } from './redis-pairing.js';
import { defineRekeyScripts, RedisGroups } from './redis-groups.js';
import type { GroupRotation } from '../group-rotation.js';
import type { NewPairingRequest } from '../pairing.js';
import { b64, mapError, toUser } from './codec.js';

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
  readonly #devices: RedisDevices;
  readonly #pairings: RedisPairings;
  readonly #groups: RedisGroups;

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
    this.#devices = new RedisDevices({
      client: this.#client,
      key: this.#key,
      prefix: this.#prefix,
      channel: this.#channel,
      now: this.#now,
      run: (fn) => this.#run(fn),
      script: (name, address, args) => this.#script(name, address, args),
    });
    this.#groups = new RedisGroups({
      client: this.#client,
      key: this.#key,
      prefix: this.#prefix,
      channel: this.#channel,
      run: (fn) => this.#run(fn),
      script: (name, address, args) => this.#script(name, address, args),
      getUser: (address) => this.getUser(address),
      listActiveDevices: (address) => this.listActiveDevices(address),
      now: this.#now,
    });
    defineRekeyScripts(this.#client);
    this.#pairings = new RedisPairings({
      client: this.#client,
      key: this.#key,
      prefix: this.#prefix,
      now: this.#now,
      run: (fn) => this.#run(fn),
      userCreated: async (address) => (await this.getUser(address))?.created ?? null,
    });
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

  // --- device pairings (redis-pairing.ts) ---
  addPairingRequest = (request: NewPairingRequest, maxPending: number) =>
    this.#pairings.addPairingRequest(request, maxPending);
  listPairingRequests = (address: string) => this.#pairings.listPairingRequests(address);
  getPairingRequest = (address: string, id: string) =>
    this.#pairings.getPairingRequest(address, id);
  approvePairingRequest = (address: string, id: string, certificate: Uint8Array) =>
    this.#pairings.approvePairingRequest(address, id, certificate);
  removePairingRequest = (address: string, id: string) =>
    this.#pairings.removePairingRequest(address, id);

  // --- the mailbox's groups and their rotation (redis-groups.ts) ---
  rotateGroup = (address: string, rotation: GroupRotation) =>
    this.#groups.rotateGroup(address, rotation);
  formerGroups = (address: string) => this.#groups.formerGroups(address);
  startRotation = (...a: Parameters<RedisGroups['startRotation']>) =>
    this.#groups.startRotation(...a);
  pendingRotation = (address: string) => this.#groups.pendingRotation(address);
  cancelRotation = (address: string) => this.#groups.cancelRotation(address);
  putRekeyRequest = (...a: Parameters<RedisGroups['putRekeyRequest']>) =>
    this.#groups.putRekeyRequest(...a);
  rekeyRequests = (address: string) => this.#groups.rekeyRequests(address);
  removeRekeyRequest = (address: string, id: string) =>
    this.#groups.removeRekeyRequest(address, id);

  // --- devices and their recryption keys (redis-devices.ts) ---
  addDevice = (device: NewDevice) => this.#devices.addDevice(device);
  getDevice = (address: string, id: string) => this.#devices.getDevice(address, id);
  getDeviceByName = (address: string, name: string) => this.#devices.getDeviceByName(address, name);
  listDevices = (address: string) => this.#devices.listDevices(address);
  listActiveDevices = (address: string) => this.#devices.listActiveDevices(address);
  touchDevice = (address: string, id: string, at?: number) =>
    this.#devices.touchDevice(address, id, at);
  revokeDevice = (address: string, id: string) => this.#devices.revokeDevice(address, id);
  putRecryptionKey = (address: string, id: string, groupId: string, rk: Scalar) =>
    this.#devices.putRecryptionKey(address, id, groupId, rk);
  keysForDevice = (address: string, id: string) => this.#devices.keysForDevice(address, id);

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
    await this.#pairings.forgetUser(normal);
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

  async resetEnrolment(address: string): Promise<Device[]> {
    const normal = normaliseAddress(address);
    // The script applies only if the active devices are still those read here (their
    // events are encoded here); a device added in between means read again.
    for (let attempt = 0; attempt < 5; attempt++) {
      if ((await this.getUser(normal)) === null) break;
      const active = await this.listActiveDevices(normal);
      const now = this.#now();
      const events = active.map((device) => ({
        type: 'device-revoked' as const,
        address: normal,
        id: device.id,
        deviceId: device.deviceId,
      }));
      const reply = await this.#script('rgResetEnrolment', normal, [
        String(now),
        this.#channel,
        encodeEventBatch(events),
        ...active.map((device) => device.id),
      ]);
      if (reply === 'OK') return active.map((device) => ({ ...device, revoked: now }));
      if (reply === 'E_NOT_FOUND') break;
      if (reply !== 'E_CHANGED') {
        throw new KeyStoreUnavailableError(`unexpected key store reply ${reply.slice(0, 40)}`);
      }
    }
    const exists = (await this.getUser(normal)) !== null;
    if (!exists) throw new NotFoundError('user', `no user ${normal}`);
    throw new KeyStoreUnavailableError('devices kept changing during the enrolment reset');
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
