/** Contract section: mailing lists — records, membership keys, removal, rotation. */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DuplicateError,
  GatewayKey,
  type KeyStore,
  KeyStoreArgumentError,
  KeyStoreError,
  type ListGroup,
  NotFoundError,
} from '../../src/keystore/index.js';
import { multiplyScalars } from '../../src/recrypt/scalar.js';
import { type ContractContext, expectError, nextEvent } from './contract-context.js';
import { fixture, randomRecipientIdHex, randomScalar, uniqueAddress } from './fixtures.js';

export function listsContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  let harness: ContractContext['harness'];
  const newGroup = (): ListGroup => ({
    groupId: randomRecipientIdHex(),
    certificate: fixture('group.der'),
  });
  beforeAll(() => {
    ({ store, other, harness } = ctx);
  });

  /** A list owned by a fresh user, and `n` enrolled members with their keys. */
  async function listWithMembers(n: number) {
    const owner = await ctx.enrolledUser();
    const address = uniqueAddress('list');
    const list = await store.createList({ address, owner, displayName: 'Dev', group: newGroup() });
    const members: Array<{ address: string; memberGroupId: string; rk: bigint }> = [];
    for (let i = 0; i < n; i++) {
      const member = {
        address: await ctx.enrolledUser(),
        memberGroupId: randomRecipientIdHex(),
        rk: randomScalar(),
      };
      await store.putListMember(list.address, member.address, member.memberGroupId, member.rk);
      members.push(member);
    }
    return { owner, list, members };
  }

  describe('lists', () => {
    it('creates, finds, updates and removes a list', async () => {
      const owner = await ctx.enrolledUser();
      const address = uniqueAddress('List');
      const group = newGroup();
      const list = await store.createList({
        address,
        owner,
        displayName: 'Developers',
        policy: 'announce',
        subjectTag: '[dev]',
        group,
      });
      expect(list).toMatchObject({
        address: address.toLowerCase(),
        owner,
        displayName: 'Developers',
        policy: 'announce',
        subjectTag: '[dev]',
        group: { groupId: group.groupId },
        formerGroups: [],
      });
      expect(await other.getList(address)).toEqual(list);
      expect((await other.listLists()).map((l) => l.address)).toContain(list.address);
      const updated = await other.updateList(address, { policy: 'open', subjectTag: '' });
      expect(updated).toMatchObject({ policy: 'open', subjectTag: '', displayName: 'Developers' });
      expect(await store.getList(address)).toEqual(updated);
      await store.removeList(address);
      expect(await other.getList(address)).toBeNull();
      expect((await other.listLists()).map((l) => l.address)).not.toContain(list.address);
      await expectError(store.removeList(address), NotFoundError);
      await expectError(store.updateList(address, { policy: 'open' }), NotFoundError);
    });

    it('refuses a taken address, an unknown owner and bad input', async () => {
      const owner = await ctx.enrolledUser();
      const address = uniqueAddress('list');
      await store.createList({ address, owner, group: newGroup() });
      const dup = await expectError(
        other.createList({ address, owner, group: newGroup() }),
        DuplicateError,
      );
      expect(dup.what).toBe('list');
      await expectError(
        store.createList({ address: owner, owner, group: newGroup() }),
        DuplicateError,
      );
      await expectError(
        store.createList({
          address: uniqueAddress('list'),
          owner: uniqueAddress(),
          group: newGroup(),
        }),
        NotFoundError,
      );
      const bad = [
        { policy: 'anyone' as never },
        { subjectTag: 'a\r\nBcc: x@example.org' },
        { group: { groupId: 'XYZ', certificate: fixture('group.der') } },
        { group: { groupId: randomRecipientIdHex(), certificate: new Uint8Array([1, 2, 3]) } },
      ];
      for (const extra of bad) {
        await expectError(
          store.createList({ address: uniqueAddress('list'), owner, group: newGroup(), ...extra }),
          KeyStoreArgumentError,
        );
      }
      await expectError(
        store.updateList(address, { policy: 'nobody' as never }),
        KeyStoreArgumentError,
      );
    });

    it('stores members with their key for the current group, seen by another instance', async () => {
      const { list, members } = await listWithMembers(3);
      expect((await other.listMembers(list.address)).map((m) => m.address)).toEqual(
        members.map((m) => m.address).sort(),
      );
      for (const m of members) {
        expect(await other.listsOfMember(m.address)).toEqual([list.address]);
        expect(await other.listKeysForMember(m.address)).toEqual([
          {
            list: list.address,
            groupId: list.group.groupId,
            memberGroupId: m.memberGroupId,
            rk: m.rk,
          },
        ]);
      }
      await expectError(
        store.putListMember(list.address, uniqueAddress(), randomRecipientIdHex(), randomScalar()),
        NotFoundError,
      );
      await expectError(
        store.putListMember(
          uniqueAddress('list'),
          members[0]!.address,
          randomRecipientIdHex(),
          randomScalar(),
        ),
        NotFoundError,
      );
      await expectError(
        store.putListMember(list.address, members[0]!.address, randomRecipientIdHex(), 0n),
        KeyStoreArgumentError,
      );
    });

    it('a re-join replaces the member key', async () => {
      const { list, members } = await listWithMembers(1);
      const rk = randomScalar();
      const memberGroupId = randomRecipientIdHex();
      await other.putListMember(list.address, members[0]!.address, memberGroupId, rk);
      expect(await store.listKeysForMember(members[0]!.address)).toEqual([
        { list: list.address, groupId: list.group.groupId, memberGroupId, rk },
      ]);
    });

    it('removing a member deletes every key of theirs at once and notifies', async () => {
      const { list, members } = await listWithMembers(2);
      const [gone, stays] = members as [(typeof members)[0], (typeof members)[0]];
      const event = nextEvent(
        other,
        (e) =>
          e.type === 'list-changed' && e.list === list.address && e.members.includes(gone.address),
      );
      await store.removeListMember(list.address, gone.address);
      await event;
      expect(await other.listKeysForMember(gone.address)).toEqual([]);
      expect(await other.listsOfMember(gone.address)).toEqual([]);
      expect((await other.listKeysForMember(stays.address)).map((k) => k.rk)).toEqual([stays.rk]);
      await expectError(store.removeListMember(list.address, gone.address), NotFoundError);
    });

    it('rotates in one change: δ·rk for every remaining member, old keys kept', async () => {
      const { list, members } = await listWithMembers(3);
      await store.removeListMember(list.address, members[0]!.address);
      const next = newGroup();
      const delta = randomScalar();
      const event = nextEvent(other, (e) => e.type === 'list-changed' && e.list === list.address);
      const rotated = await store.rotateList(list.address, list.group.groupId, next, delta);
      await event;
      expect(rotated.group.groupId).toBe(next.groupId);
      expect(rotated.formerGroups.map((g) => g.groupId)).toEqual([list.group.groupId]);
      expect(await other.getList(list.address)).toEqual(rotated);
      for (const m of members.slice(1)) {
        const keys = await other.listKeysForMember(m.address);
        const byGroup = new Map(keys.map((k) => [k.groupId, k.rk]));
        expect(byGroup.get(list.group.groupId)).toBe(m.rk);
        expect(byGroup.get(next.groupId)).toBe(multiplyScalars(delta, m.rk));
        expect(byGroup.size).toBe(2);
      }
      expect(await other.listKeysForMember(members[0]!.address)).toEqual([]);
      // A stale rotation (computed against the old group) and a reused group are refused.
      await expectError(
        store.rotateList(list.address, list.group.groupId, newGroup(), randomScalar()),
        KeyStoreArgumentError,
      );
      await expectError(
        store.rotateList(list.address, next.groupId, next, randomScalar()),
        KeyStoreArgumentError,
      );
      await expectError(
        store.rotateList(uniqueAddress('list'), next.groupId, newGroup(), delta),
        NotFoundError,
      );
      // A member joining after the rotation gets a key for the new group only.
      const late = await ctx.enrolledUser();
      const rk = randomScalar();
      await store.putListMember(list.address, late, randomRecipientIdHex(), rk);
      expect((await other.listKeysForMember(late)).map((k) => [k.groupId, k.rk])).toEqual([
        [next.groupId, rk],
      ]);
    });

    it('a join racing a rotation leaves every member with a key for the current group', async () => {
      const { list } = await listWithMembers(2);
      const joiners = await Promise.all([
        ctx.enrolledUser(),
        ctx.enrolledUser(),
        ctx.enrolledUser(),
      ]);
      const next = newGroup();
      await Promise.all([
        store.rotateList(list.address, list.group.groupId, next, randomScalar()),
        ...joiners.map((j, i) =>
          (i % 2 === 0 ? store : other).putListMember(
            list.address,
            j,
            randomRecipientIdHex(),
            randomScalar(),
          ),
        ),
      ]);
      const after = await other.getList(list.address);
      expect(after!.group.groupId).toBe(next.groupId);
      const members = await other.listMembers(list.address);
      expect(members).toHaveLength(5);
      for (const m of members) {
        const keys = await other.listKeysForMember(m.address);
        expect(keys.some((k) => k.groupId === next.groupId)).toBe(true);
      }
    });

    it('removing the list deletes its members and keys', async () => {
      const { list, members } = await listWithMembers(2);
      await store.removeList(list.address);
      for (const m of members) {
        expect(await other.listKeysForMember(m.address)).toEqual([]);
        expect(await other.listsOfMember(m.address)).toEqual([]);
      }
      await expectError(other.listMembers(list.address), NotFoundError);
    });

    it('never stores a list key in the clear; another gateway key cannot unwrap it', async () => {
      const { members } = await listWithMembers(1);
      const rk = members[0]!.rk;
      const bytes = Buffer.from(rk.toString(16).padStart(64, '0'), 'hex');
      const forms = [
        bytes,
        Buffer.from(bytes.toString('hex')),
        Buffer.from(bytes.toString('base64')),
      ];
      const raw = await harness.rawContents();
      expect(raw.some((v) => v.includes(Buffer.from(members[0]!.memberGroupId)))).toBe(true);
      for (const value of raw) for (const form of forms) expect(value.includes(form)).toBe(false);
      const stranger = await harness.open(GatewayKey.generate());
      try {
        const err = await expectError(
          stranger.listKeysForMember(members[0]!.address),
          KeyStoreError,
        );
        expect(err.code).toBe('corrupt');
      } finally {
        await stranger.close();
      }
    });
  });
}
