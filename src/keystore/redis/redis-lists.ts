/**
 * The Redis adapter's lists; key layout and scripts in list-scripts.ts. The
 * two index sets (`lists`, `memberof:<M>`) live outside the list's slot: they are written
 * before an add and after a remove, and every read checks them against the list record,
 * so a crash in between leaves only a stale index entry that reads skip.
 */
import type { Scalar } from '../../recrypt/types.js';
import {
  DuplicateError,
  KeyStoreArgumentError,
  KeyStoreUnavailableError,
  NotFoundError,
} from '../errors.js';
import { encodeEventBatch } from '../events.js';
import { type GatewayKey, unwrapRecryptionKey, wrapRecryptionKey } from '../key-wrapping.js';
import {
  checkListGroup,
  checkListUpdate,
  checkPolicy,
  checkSubjectTag,
  rotateKey,
} from '../list-prepare.js';
import type {
  ListGroup,
  ListMember,
  ListStore,
  ListUpdate,
  MailingList,
  MemberListKey,
  NewList,
} from '../list-types.js';
import type { User } from '../types.js';
import {
  checkDisplayName,
  checkDer,
  checkRecipientIdHex,
  checkScalar,
  normaliseAddress,
} from '../validate.js';
import { b64, mapError } from './codec.js';
import { readListSnapshot, toListMembers, toMailingList, type Snapshot } from './list-snapshot.js';
import type { RedisClient } from './connect.js';
import {
  LIST_SCRIPTS,
  LIST_SCRIPT_KEYS,
  listKeys,
  listsSetKey,
  memberOfKey,
  type ListScriptName,
} from './list-scripts.js';

export interface RedisListDeps {
  client: RedisClient;
  key: GatewayKey;
  prefix: string;
  channel: string;
  now: () => number;
  getUser: (address: string) => Promise<User | null>;
}

const MAX_RETRIES = 8;

export function defineListScripts(client: RedisClient): void {
  for (const [name, lua] of Object.entries(LIST_SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: LIST_SCRIPT_KEYS, lua });
  }
}

export class RedisLists implements ListStore {
  constructor(private readonly deps: RedisListDeps) {}

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err);
    }
  }

  async #script(name: ListScriptName, list: string, args: Array<string | Buffer>): Promise<string> {
    const client = this.deps.client as unknown as Record<
      string,
      (...a: unknown[]) => Promise<unknown>
    >;
    const keys = listKeys(this.deps.prefix, list);
    return String(await this.#run(() => client[name]!.call(this.deps.client, ...keys, ...args)));
  }

  #event(list: string, members: string[]): string {
    return encodeEventBatch([{ type: 'list-changed', list, members }]);
  }

  async createList(input: NewList): Promise<MailingList> {
    const address = normaliseAddress(input.address);
    const owner = normaliseAddress(input.owner);
    const displayName = checkDisplayName(input.displayName ?? '');
    const policy = checkPolicy(input.policy ?? 'members');
    const subjectTag = checkSubjectTag(input.subjectTag ?? '');
    const group = checkListGroup(input.group);
    if ((await this.deps.getUser(owner)) === null)
      throw new NotFoundError('user', `no user ${owner}`);
    // Users live in other slots: this check is not atomic with the create (a user added
    // at the same instant may share the address; the MX then prefers the user).
    if ((await this.deps.getUser(address)) !== null)
      throw new DuplicateError('list', `address ${address} is taken`);
    const created = this.deps.now();
    await this.#run(() => this.deps.client.sadd(listsSetKey(this.deps.prefix), address));
    const reply = await this.#script('rlCreate', address, [
      address,
      displayName,
      owner,
      policy,
      subjectTag,
      group.groupId,
      JSON.stringify({ certificate: b64(group.certificate), seq: 0 }),
      String(created),
    ]);
    if (reply === 'E_DUP') throw new DuplicateError('list', `address ${address} is taken`);
    return { address, displayName, owner, policy, subjectTag, group, formerGroups: [], created };
  }

  async getList(address: string): Promise<MailingList | null> {
    const s = await readListSnapshot(this.deps.client, this.deps.prefix, normaliseAddress(address));
    return s === null ? null : toMailingList(s);
  }

  async listLists(): Promise<MailingList[]> {
    const addresses = await this.#run(() =>
      this.deps.client.smembers(listsSetKey(this.deps.prefix)),
    );
    const lists = await Promise.all(addresses.sort().map((a) => this.getList(a)));
    return lists.filter((l): l is MailingList => l !== null);
  }

  async updateList(address: string, update: ListUpdate): Promise<MailingList> {
    const normal = normaliseAddress(address);
    const u = checkListUpdate(update);
    const pairs = Object.entries(u).flatMap(([k, v]) => [k, String(v)]);
    const reply = await this.#script('rlUpdate', normal, pairs);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('list', `no list ${normal}`);
    return (await this.getList(normal))!;
  }

  async removeList(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    const s = await readListSnapshot(this.deps.client, this.deps.prefix, normal);
    if (s === null) throw new NotFoundError('list', `no list ${normal}`);
    const members = Object.keys(s.members).sort();
    const reply = await this.#script('rlRemove', normal, [
      this.deps.channel,
      this.#event(normal, members),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('list', `no list ${normal}`);
    await this.#run(async () => {
      for (const m of members)
        await this.deps.client.srem(memberOfKey(this.deps.prefix, m), normal);
      await this.deps.client.srem(listsSetKey(this.deps.prefix), normal);
    });
  }

  async putListMember(
    list: string,
    member: string,
    memberGroupId: string,
    rk: Scalar,
  ): Promise<void> {
    await this.#putMember(list, member, memberGroupId, null, rk);
  }

  async putRemoteListMember(
    list: string,
    member: string,
    certificate: Uint8Array,
    memberGroupId: string,
    rk: Scalar,
  ): Promise<void> {
    await this.#putMember(list, member, memberGroupId, checkDer(certificate, 'certificate'), rk);
  }

  /**
   * A local member must be a user here; a remote one (with a certificate) must not be.
   * Users live in other slots, so like createList's check this one is not atomic with
   * the change.
   */
  async #putMember(
    list: string,
    member: string,
    memberGroupId: string,
    certificate: Uint8Array | null,
    rk: Scalar,
  ): Promise<void> {
    const normalList = normaliseAddress(list);
    const normalMember = normaliseAddress(member);
    checkRecipientIdHex(memberGroupId, 'memberGroupId');
    checkScalar(rk);
    const isUser = (await this.deps.getUser(normalMember)) !== null;
    if (certificate === null && !isUser) throw new NotFoundError('user', `no user ${normalMember}`);
    if (certificate !== null && isUser)
      throw new KeyStoreArgumentError(
        `${normalMember} is a user of this gateway: they join as a local member`,
      );
    await this.#run(() =>
      this.deps.client.sadd(memberOfKey(this.deps.prefix, normalMember), normalList),
    );
    const json = JSON.stringify({
      memberGroupId,
      joined: this.deps.now(),
      ...(certificate !== null ? { certificate: b64(certificate) } : {}),
    });
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const s = await readListSnapshot(this.deps.client, this.deps.prefix, normalList);
      if (s === null) throw new NotFoundError('list', `no list ${normalList}`);
      const groupId = s.list.groupId!;
      const wrapped = wrapRecryptionKey(this.deps.key, rk, { groupId, targetId: memberGroupId });
      const reply = await this.#script('rlPutMember', normalList, [
        groupId,
        normalMember,
        json,
        wrapped,
        this.deps.channel,
        this.#event(normalList, [normalMember]),
      ]);
      if (reply === 'OK') return;
      if (reply === 'E_NOT_FOUND') throw new NotFoundError('list', `no list ${normalList}`);
    }
    throw new KeyStoreUnavailableError('the list kept changing; retry');
  }

  async removeListMember(list: string, member: string): Promise<void> {
    const normalList = normaliseAddress(list);
    const normalMember = normaliseAddress(member);
    const reply = await this.#script('rlRemoveMember', normalList, [
      normalMember,
      this.deps.channel,
      this.#event(normalList, [normalMember]),
    ]);
    if (reply === 'E_NOT_FOUND') throw new NotFoundError('list', `no list ${normalList}`);
    if (reply === 'E_NOT_MEMBER')
      throw new NotFoundError('list-member', `${normalMember} is not a member of ${normalList}`);
    await this.#run(() =>
      this.deps.client.srem(memberOfKey(this.deps.prefix, normalMember), normalList),
    );
  }

  async listMembers(list: string): Promise<ListMember[]> {
    const normal = normaliseAddress(list);
    const s = await readListSnapshot(this.deps.client, this.deps.prefix, normal);
    if (s === null) throw new NotFoundError('list', `no list ${normal}`);
    return toListMembers(s);
  }

  async #memberSnapshots(member: string): Promise<Array<[string, Snapshot]>> {
    const lists = await this.#run(() =>
      this.deps.client.smembers(memberOfKey(this.deps.prefix, member)),
    );
    const out: Array<[string, Snapshot]> = [];
    for (const list of lists.sort()) {
      const s = await readListSnapshot(this.deps.client, this.deps.prefix, list);
      if (s !== null && s.members[member] !== undefined) out.push([list, s]);
    }
    return out;
  }

  async listsOfMember(member: string): Promise<string[]> {
    return (await this.#memberSnapshots(normaliseAddress(member))).map(([list]) => list);
  }

  async listKeysForMember(member: string): Promise<MemberListKey[]> {
    const normal = normaliseAddress(member);
    const keys: MemberListKey[] = [];
    const suffix = `|${normal}`;
    for (const [list, s] of await this.#memberSnapshots(normal)) {
      const { memberGroupId } = JSON.parse(s.members[normal]!) as { memberGroupId: string };
      for (const field of Object.keys(s.rk).sort()) {
        if (!field.endsWith(suffix)) continue;
        const groupId = field.slice(0, -suffix.length);
        const rk = unwrapRecryptionKey(this.deps.key, s.rk[field]!, {
          groupId,
          targetId: memberGroupId,
        });
        keys.push({ list, groupId, memberGroupId, rk });
      }
    }
    return keys;
  }

  async rotateList(
    list: string,
    expectedGroupId: string,
    next: ListGroup,
    delta: Scalar,
  ): Promise<MailingList> {
    const normal = normaliseAddress(list);
    const group = checkListGroup(next);
    checkScalar(delta, 'delta');
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const s = await readListSnapshot(this.deps.client, this.deps.prefix, normal);
      if (s === null) throw new NotFoundError('list', `no list ${normal}`);
      const current = s.list.groupId!;
      if (current !== expectedGroupId)
        throw new KeyStoreArgumentError('the list was rotated meanwhile; show it and retry');
      const triples: Array<string | Buffer> = [];
      const members = Object.keys(s.members).sort();
      for (const member of members) {
        const json = s.members[member]!;
        const { memberGroupId } = JSON.parse(json) as { memberGroupId: string };
        const wrappedOld = s.rk[`${current}|${member}`];
        if (wrappedOld === undefined) throw new KeyStoreUnavailableError('member without a key');
        const old = unwrapRecryptionKey(this.deps.key, wrappedOld, {
          groupId: current,
          targetId: memberGroupId,
        });
        const wrapped = wrapRecryptionKey(this.deps.key, rotateKey(delta, old), {
          groupId: group.groupId,
          targetId: memberGroupId,
        });
        triples.push(member, json, wrapped);
      }
      const seq = Object.keys(s.groups).length;
      const reply = await this.#script('rlRotate', normal, [
        current,
        group.groupId,
        JSON.stringify({ certificate: b64(group.certificate), seq }),
        this.deps.channel,
        this.#event(normal, members),
        ...triples,
      ]);
      if (reply === 'OK') return (await this.getList(normal))!;
      if (reply === 'E_NOT_FOUND') throw new NotFoundError('list', `no list ${normal}`);
      if (reply === 'E_ROTATED')
        throw new KeyStoreArgumentError('the list was rotated meanwhile; show it and retry');
      if (reply === 'E_NOT_NEW') throw new KeyStoreArgumentError('the new list group is not new');
    }
    throw new KeyStoreUnavailableError('the list kept changing; retry');
  }
}
