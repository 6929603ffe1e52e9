/**
 * The SQLite adapter's lists: tables `lists`, `list_groups`, `list_members`,
 * `list_keys` (schema.ts, migrations 2 and 3; a remote member's row carries their
 * certificate and is no user's). Each change is one IMMEDIATE transaction run by
 * the owning SqliteKeyStore; a rotation unwraps, re-keys and re-wraps every member's key
 * inside that one transaction.
 */
import type Database from 'better-sqlite3';
import type { Scalar } from '../../recrypt/types.js';
import { DuplicateError, KeyStoreArgumentError, NotFoundError } from '../errors.js';
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
  PostingPolicy,
} from '../list-types.js';
import type { KeyStoreEvent } from '../types.js';
import {
  checkDisplayName,
  checkDer,
  checkRecipientIdHex,
  checkScalar,
  normaliseAddress,
} from '../validate.js';

interface ListRow {
  address: string;
  display_name: string;
  owner: string;
  policy: PostingPolicy;
  subject_tag: string;
  group_id: string;
  created: number;
}

export interface SqliteListDeps {
  db: () => Database.Database;
  tx: <T>(fn: () => T) => T;
  key: GatewayKey;
  now: () => number;
  publish: (event: KeyStoreEvent) => void;
}

export class SqliteLists implements ListStore {
  constructor(private readonly deps: SqliteListDeps) {}

  #row(address: string): ListRow | undefined {
    return this.deps.db().prepare('SELECT * FROM lists WHERE address = ?').get(address) as
      ListRow | undefined;
  }

  #require(address: string): ListRow {
    const row = this.#row(address);
    if (row === undefined) throw new NotFoundError('list', `no list ${address}`);
    return row;
  }

  #toList(row: ListRow): MailingList {
    const groups = this.deps
      .db()
      .prepare('SELECT group_id, certificate FROM list_groups WHERE list = ? ORDER BY rowid')
      .all(row.address) as Array<{ group_id: string; certificate: Buffer }>;
    const all: ListGroup[] = groups.map((g) => ({
      groupId: g.group_id,
      certificate: new Uint8Array(g.certificate),
    }));
    const current = all.find((g) => g.groupId === row.group_id);
    if (current === undefined) throw new NotFoundError('list', `list ${row.address} has no group`);
    return {
      address: row.address,
      displayName: row.display_name,
      owner: row.owner,
      policy: row.policy,
      subjectTag: row.subject_tag,
      group: current,
      formerGroups: all.filter((g) => g.groupId !== row.group_id),
      created: row.created,
    };
  }

  #memberAddresses(list: string): string[] {
    return (
      this.deps
        .db()
        .prepare('SELECT member FROM list_members WHERE list = ? ORDER BY member')
        .all(list) as Array<{ member: string }>
    ).map((r) => r.member);
  }

  async createList(input: NewList): Promise<MailingList> {
    const address = normaliseAddress(input.address);
    const owner = normaliseAddress(input.owner);
    const displayName = checkDisplayName(input.displayName ?? '');
    const policy = checkPolicy(input.policy ?? 'members');
    const subjectTag = checkSubjectTag(input.subjectTag ?? '');
    const group = checkListGroup(input.group);
    const created = this.deps.now();
    const db = this.deps.db();
    return this.deps.tx(() => {
      if (db.prepare('SELECT 1 FROM users WHERE address = ?').get(owner) === undefined)
        throw new NotFoundError('user', `no user ${owner}`);
      const taken =
        this.#row(address) !== undefined ||
        db.prepare('SELECT 1 FROM users WHERE address = ?').get(address) !== undefined;
      if (taken) throw new DuplicateError('list', `address ${address} is taken`);
      db.prepare(
        `INSERT INTO lists (address, display_name, owner, policy, subject_tag, group_id, created)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(address, displayName, owner, policy, subjectTag, group.groupId, created);
      db.prepare('INSERT INTO list_groups (list, group_id, certificate) VALUES (?, ?, ?)').run(
        address,
        group.groupId,
        group.certificate,
      );
      return this.#toList(this.#require(address));
    });
  }

  async getList(address: string): Promise<MailingList | null> {
    const row = this.#row(normaliseAddress(address));
    return row === undefined ? null : this.#toList(row);
  }

  async listLists(): Promise<MailingList[]> {
    const rows = this.deps.db().prepare('SELECT * FROM lists ORDER BY address').all() as ListRow[];
    return rows.map((r) => this.#toList(r));
  }

  async updateList(address: string, update: ListUpdate): Promise<MailingList> {
    const normal = normaliseAddress(address);
    const u = checkListUpdate(update);
    const db = this.deps.db();
    return this.deps.tx(() => {
      const row = this.#require(normal);
      db.prepare(
        'UPDATE lists SET display_name = ?, policy = ?, subject_tag = ? WHERE address = ?',
      ).run(
        u.displayName ?? row.display_name,
        u.policy ?? row.policy,
        u.subjectTag ?? row.subject_tag,
        normal,
      );
      return this.#toList(this.#require(normal));
    });
  }

  async removeList(address: string): Promise<void> {
    const normal = normaliseAddress(address);
    const members = this.deps.tx(() => {
      this.#require(normal);
      const members = this.#memberAddresses(normal);
      this.deps.db().prepare('DELETE FROM lists WHERE address = ?').run(normal);
      return members;
    });
    this.deps.publish({ type: 'list-changed', list: normal, members });
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

  /** A local member must be a user here; a remote one (with a certificate) must not be. */
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
    const db = this.deps.db();
    this.deps.tx(() => {
      const row = this.#require(normalList);
      const isUser =
        db.prepare('SELECT 1 FROM users WHERE address = ?').get(normalMember) !== undefined;
      if (certificate === null && !isUser)
        throw new NotFoundError('user', `no user ${normalMember}`);
      if (certificate !== null && isUser)
        throw new KeyStoreArgumentError(
          `${normalMember} is a user of this gateway: they join as a local member`,
        );
      // A re-join replaces everything of the member's earlier membership.
      db.prepare('DELETE FROM list_members WHERE list = ? AND member = ?').run(
        normalList,
        normalMember,
      );
      db.prepare(
        `INSERT INTO list_members (list, member, member_group_id, certificate, joined)
         VALUES (?, ?, ?, ?, ?)`,
      ).run(normalList, normalMember, memberGroupId, certificate, this.deps.now());
      db.prepare('INSERT INTO list_keys (list, member, group_id, wrapped) VALUES (?, ?, ?, ?)').run(
        normalList,
        normalMember,
        row.group_id,
        wrapRecryptionKey(this.deps.key, rk, { groupId: row.group_id, targetId: memberGroupId }),
      );
    });
    this.deps.publish({ type: 'list-changed', list: normalList, members: [normalMember] });
  }

  async removeListMember(list: string, member: string): Promise<void> {
    const normalList = normaliseAddress(list);
    const normalMember = normaliseAddress(member);
    const info = this.deps.tx(() => {
      this.#require(normalList);
      // Keys go with the member row (ON DELETE CASCADE), in the same transaction.
      return this.deps
        .db()
        .prepare('DELETE FROM list_members WHERE list = ? AND member = ?')
        .run(normalList, normalMember);
    });
    if (info.changes === 0)
      throw new NotFoundError('list-member', `${normalMember} is not a member of ${normalList}`);
    this.deps.publish({ type: 'list-changed', list: normalList, members: [normalMember] });
  }

  async listMembers(list: string): Promise<ListMember[]> {
    const normal = normaliseAddress(list);
    this.#require(normal);
    const rows = this.deps
      .db()
      .prepare(
        `SELECT member, member_group_id, certificate, joined FROM list_members
         WHERE list = ? ORDER BY member`,
      )
      .all(normal) as Array<{
      member: string;
      member_group_id: string;
      certificate: Buffer | null;
      joined: number;
    }>;
    return rows.map((r) => ({
      address: r.member,
      memberGroupId: r.member_group_id,
      ...(r.certificate !== null ? { certificate: new Uint8Array(r.certificate) } : {}),
      joined: r.joined,
    }));
  }

  async listsOfMember(member: string): Promise<string[]> {
    const rows = this.deps
      .db()
      .prepare('SELECT list FROM list_members WHERE member = ? ORDER BY list')
      .all(normaliseAddress(member)) as Array<{ list: string }>;
    return rows.map((r) => r.list);
  }

  async listKeysForMember(member: string): Promise<MemberListKey[]> {
    const rows = this.deps
      .db()
      .prepare(
        `SELECT k.list, k.group_id, k.wrapped, m.member_group_id FROM list_keys k
         JOIN list_members m ON m.list = k.list AND m.member = k.member
         WHERE k.member = ? ORDER BY k.list, k.group_id`,
      )
      .all(normaliseAddress(member)) as Array<{
      list: string;
      group_id: string;
      wrapped: Buffer;
      member_group_id: string;
    }>;
    return rows.map((r) => ({
      list: r.list,
      groupId: r.group_id,
      memberGroupId: r.member_group_id,
      rk: unwrapRecryptionKey(this.deps.key, r.wrapped, {
        groupId: r.group_id,
        targetId: r.member_group_id,
      }),
    }));
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
    const db = this.deps.db();
    const { result, members } = this.deps.tx(() => {
      const row = this.#require(normal);
      if (row.group_id !== expectedGroupId)
        throw new KeyStoreArgumentError('the list was rotated meanwhile; show it and retry');
      if (
        db.prepare('SELECT 1 FROM list_groups WHERE group_id = ?').get(group.groupId) !== undefined
      )
        throw new KeyStoreArgumentError('the new list group is not new');
      const current = db
        .prepare(
          `SELECT k.member, k.wrapped, m.member_group_id FROM list_keys k
           JOIN list_members m ON m.list = k.list AND m.member = k.member
           WHERE k.list = ? AND k.group_id = ?`,
        )
        .all(normal, row.group_id) as Array<{
        member: string;
        wrapped: Buffer;
        member_group_id: string;
      }>;
      const insert = db.prepare(
        'INSERT INTO list_keys (list, member, group_id, wrapped) VALUES (?, ?, ?, ?)',
      );
      for (const m of current) {
        const old = unwrapRecryptionKey(this.deps.key, m.wrapped, {
          groupId: row.group_id,
          targetId: m.member_group_id,
        });
        const rk = rotateKey(delta, old);
        insert.run(
          normal,
          m.member,
          group.groupId,
          wrapRecryptionKey(this.deps.key, rk, {
            groupId: group.groupId,
            targetId: m.member_group_id,
          }),
        );
      }
      db.prepare('INSERT INTO list_groups (list, group_id, certificate) VALUES (?, ?, ?)').run(
        normal,
        group.groupId,
        group.certificate,
      );
      db.prepare('UPDATE lists SET group_id = ? WHERE address = ?').run(group.groupId, normal);
      return {
        result: this.#toList(this.#require(normal)),
        members: current.map((m) => m.member),
      };
    });
    this.deps.publish({ type: 'list-changed', list: normal, members });
    return result;
  }
}
