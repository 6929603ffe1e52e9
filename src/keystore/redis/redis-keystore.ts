/**
 * The Redis key store (single node, Sentinel or Cluster through ioredis): connections,
 * nonces and notifications here; users, enrolment and profiles in redis-users.ts,
 * devices in redis-devices.ts, lists in redis-lists.ts, pairings in redis-pairing.ts and
 * group rotation in redis-groups.ts, which this class composes. Changes are
 * Lua scripts over one user's keys (scripts.ts, keys.ts); notifications are Redis
 * pub/sub on a dedicated subscriber connection, so every gateway process on the same
 * Redis hears every change. Any failure to reach Redis becomes KeyStoreUnavailableError
 * within about a second (connect.ts).
 */
import type { Scalar } from '../../recrypt/types.js';
import { decodeEventBatch, EventHub } from '../events.js';
import type { GatewayKey } from '../key-wrapping.js';
import type { KeyStore } from '../keystore.js';
import type {
  KeyStoreConfig,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
} from '../types.js';
import { checkOpaque, checkTtl } from '../validate.js';
import {
  createRedisClient,
  DEFAULT_TIMEOUTS,
  type RedisClient,
  type RedisTimeouts,
} from './connect.js';
import { DEFAULT_PREFIX, eventsChannel, nonceKey, userKeys } from './keys.js';
import { SCRIPT_KEYS, SCRIPTS, type ScriptName } from './scripts.js';
import { EventSubscriber } from './subscriber.js';
import type { ListGroup, ListUpdate, NewList } from '../list-types.js';
import { defineListScripts, RedisLists } from './redis-lists.js';
import { RedisDevices } from './redis-devices.js';
import { RedisPairings } from './redis-pairing.js';
import { defineRekeyScripts, RedisGroups } from './redis-groups.js';
import { RedisUsers } from './redis-users.js';
import type { GroupRotation } from '../group-rotation.js';
import type { NewPairingRequest } from '../pairing.js';
import { mapError } from './codec.js';

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
  readonly #users: RedisUsers;

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
    this.#users = new RedisUsers({
      client: this.#client,
      prefix: this.#prefix,
      channel: this.#channel,
      now: this.#now,
      run: (fn) => this.#run(fn),
      script: (name, address, args) => this.#script(name, address, args),
      scriptReply: (name, address, args) => this.#scriptReply(name, address, args),
      listActiveDevices: (address) => this.listActiveDevices(address),
      forgetPairings: (address) => this.#pairings.forgetUser(address),
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

  // --- users, enrolment and profiles (redis-users.ts) ---
  addUser = (user: NewUser) => this.#users.addUser(user);
  getUser = (address: string) => this.#users.getUser(address);
  listUsers = () => this.#users.listUsers();
  removeUser = (address: string) => this.#users.removeUser(address);
  createEnrolmentToken = (address: string, ttlMs: number) =>
    this.#users.createEnrolmentToken(address, ttlMs);
  enrol = (address: string, token: string, owner: OwnerCertificates) =>
    this.#users.enrol(address, token, owner);
  resetEnrolment = (address: string) => this.#users.resetEnrolment(address);
  setOwnerCertificates = (address: string, owner: OwnerCertificates) =>
    this.#users.setOwnerCertificates(address, owner);
  putProfile = (address: string, document: string) => this.#users.putProfile(address, document);
  getProfile = (address: string) => this.#users.getProfile(address);

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
