/**
 * The Redis adapter's users: accounts, enrolment (the one-time token and the owner's
 * certificates) and published profiles. Each lives in its user's slot (`{u:<address>}`,
 * keys.ts), so every change is one of the user scripts in scripts.ts, run through the
 * owning RedisKeyStore (redis-keystore.ts), which composes this class.
 */
import {
  DuplicateError,
  KeyStoreUnavailableError,
  NotFoundError,
  TokenInvalidError,
} from '../errors.js';
import { encodeEventBatch } from '../events.js';
import { checkOwnerCertificates } from '../prepare.js';
import { hashToken, newEnrolmentToken } from '../tokens.js';
import type { Device, NewUser, OwnerCertificates, User } from '../types.js';
import { checkDisplayName, checkOpaque, checkTtl, normaliseAddress } from '../validate.js';
import type { RedisClient } from './connect.js';
import { USER_KEY, userKeys, usersSetKey } from './keys.js';
import type { ScriptName } from './scripts.js';
import { b64, toUser } from './codec.js';

export interface RedisUserDeps {
  client: RedisClient;
  prefix: string;
  channel: string;
  now: () => number;
  /** Runs a Redis call with its errors mapped to the store's typed errors. */
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Runs one of the user-slot change scripts on `address`'s keys; its status reply. */
  script: (name: ScriptName, address: string, args: Array<string | Buffer>) => Promise<string>;
  /** The same, with the script's reply as Redis gave it. */
  scriptReply: (
    name: ScriptName,
    address: string,
    args: Array<string | Buffer>,
  ) => Promise<unknown>;
  listActiveDevices: (address: string) => Promise<Device[]>;
  /** Drops a removed user's pairing requests (redis-pairing.ts). */
  forgetPairings: (address: string) => Promise<void>;
}

export class RedisUsers {
  constructor(private readonly deps: RedisUserDeps) {}

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
    return userKeys(this.deps.prefix, address);
  }

  async addUser(user: NewUser): Promise<User> {
    const address = normaliseAddress(user.address);
    const displayName = checkDisplayName(user.displayName ?? '');
    const created = this.deps.now();
    // Index first: a crash after this leaves an entry listUsers skips (keys.ts).
    await this.deps.run(() => this.deps.client.sadd(usersSetKey(this.deps.prefix), address));
    const reply = await this.deps.script('rgAddUser', address, [
      address,
      displayName,
      String(created),
    ]);
    if (reply === 'E_DUP_USER') throw new DuplicateError('user', `user ${address} exists`);
    return { address, displayName, enrolment: 'pending', owner: null, created };
  }

  async getUser(address: string): Promise<User | null> {
    const normal = normaliseAddress(address);
    const hash = await this.deps.run(() =>
      this.deps.client.hgetall(this.#keys(normal)[USER_KEY.user]!),
    );
    return toUser(hash);
  }

  async listUsers(): Promise<User[]> {
    const addresses = await this.deps.run(() =>
      this.deps.client.smembers(usersSetKey(this.deps.prefix)),
    );
    const users = await Promise.all(addresses.map((a) => this.getUser(a)));
    return users
      .filter((u): u is User => u !== null)
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  async removeUser(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    const reply = await this.deps.script('rgRemoveUser', normal, [
      this.deps.channel,
      encodeEventBatch([{ type: 'user-removed', address: normal }]),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
    await this.deps.run(() => this.deps.client.srem(usersSetKey(this.deps.prefix), normal));
    await this.deps.forgetPairings(normal);
  }

  async createEnrolmentToken(address: string, ttlMs: number): Promise<string> {
    const normal = normaliseAddress(address);
    checkTtl(ttlMs);
    const token = newEnrolmentToken();
    const reply = await this.deps.script('rgCreateToken', normal, [
      hashToken(token),
      String(this.deps.now() + ttlMs),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
    return token;
  }

  async enrol(address: string, token: string, owner: OwnerCertificates): Promise<User> {
    const normal = normaliseAddress(address);
    const c = checkOwnerCertificates(owner);
    const reply = this.#userFromReply(
      await this.deps.scriptReply('rgEnrol', normal, [
        hashToken(typeof token === 'string' ? token : ''),
        String(this.deps.now()),
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
      const active = await this.deps.listActiveDevices(normal);
      const now = this.deps.now();
      const events = active.map((device) => ({
        type: 'device-revoked' as const,
        address: normal,
        id: device.id,
        deviceId: device.deviceId,
      }));
      const reply = await this.deps.script('rgResetEnrolment', normal, [
        String(now),
        this.deps.channel,
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
      await this.deps.scriptReply('rgSetOwner', normal, [
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
    const reply = await this.deps.script('rgPutProfile', normal, [document]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('user', `no user ${normal}`);
  }

  async getProfile(address: string): Promise<string | null> {
    const normal = normaliseAddress(address);
    return this.deps.run(() => this.deps.client.get(this.#keys(normal)[USER_KEY.profile]!));
  }
}
