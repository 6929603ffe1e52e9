/**
 * Contract section: remote list members — people who are not users of this
 * gateway, in the same membership as local members, with their own certificate.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type KeyStore,
  KeyStoreArgumentError,
  type ListGroup,
  NotFoundError,
} from '../../src/keystore/index.js';
import { multiplyScalars } from '../../src/recrypt/scalar.js';
import { type ContractContext, expectError, nextEvent } from './contract-context.js';
import {
  fixture,
  randomRecipientIdHex,
  randomScalar,
  recipientIdHex,
  uniqueAddress,
} from './fixtures.js';

export function remoteMembersContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  const certificate = fixture('device-a.der');
  const remoteId = recipientIdHex(certificate);
  const newGroup = (): ListGroup => ({
    groupId: randomRecipientIdHex(),
    certificate: fixture('group.der'),
  });
  beforeAll(() => {
    ({ store, other } = ctx);
  });

  /** A list with one local member and one remote member (address normalised). */
  async function mixedList() {
    const owner = await ctx.enrolledUser();
    const list = await store.createList({
      address: uniqueAddress('list'),
      owner,
      group: newGroup(),
    });
    const local = { address: await ctx.enrolledUser(), rk: randomScalar() };
    await store.putListMember(list.address, local.address, randomRecipientIdHex(), local.rk);
    const remote = { address: uniqueAddress('remote').toLowerCase(), rk: randomScalar() };
    await store.putRemoteListMember(list.address, remote.address, certificate, remoteId, remote.rk);
    return { list, local, remote };
  }

  describe('remote list members', () => {
    it('stores a remote member with their certificate next to local members', async () => {
      const { list, local, remote } = await mixedList();
      const members = await other.listMembers(list.address);
      expect(members.map((m) => m.address)).toEqual([local.address, remote.address].sort());
      const shown = members.find((m) => m.address === remote.address)!;
      expect(shown.memberGroupId).toBe(remoteId);
      expect(Buffer.from(shown.certificate!).equals(Buffer.from(certificate))).toBe(true);
      expect(members.find((m) => m.address === local.address)!.certificate).toBeUndefined();
      expect(await other.listsOfMember(remote.address)).toEqual([list.address]);
      expect(await other.listKeysForMember(remote.address)).toEqual([
        { list: list.address, groupId: list.group.groupId, memberGroupId: remoteId, rk: remote.rk },
      ]);
      // A re-join (a new certificate, say) replaces the earlier membership.
      const rk = randomScalar();
      await other.putRemoteListMember(list.address, remote.address, certificate, remoteId, rk);
      expect((await store.listKeysForMember(remote.address)).map((k) => k.rk)).toEqual([rk]);
    });

    it('refuses a user of this gateway, an unknown list and bad input', async () => {
      const { list, local } = await mixedList();
      const before = await store.listKeysForMember(local.address);
      await expectError(
        store.putRemoteListMember(
          list.address,
          local.address,
          certificate,
          remoteId,
          randomScalar(),
        ),
        KeyStoreArgumentError,
      );
      expect(await store.listKeysForMember(local.address)).toEqual(before);
      const stranger = uniqueAddress('remote');
      await expectError(
        store.putRemoteListMember(uniqueAddress('list'), stranger, certificate, remoteId, 1n),
        NotFoundError,
      );
      await expectError(
        store.putRemoteListMember(list.address, stranger, new Uint8Array([1, 2]), remoteId, 1n),
        KeyStoreArgumentError,
      );
      await expectError(
        store.putRemoteListMember(list.address, stranger, certificate, 'not hex', 1n),
        KeyStoreArgumentError,
      );
      await expectError(
        store.putRemoteListMember(list.address, stranger, certificate, remoteId, 0n),
        KeyStoreArgumentError,
      );
      expect(await store.listsOfMember(stranger)).toEqual([]);
      // A local join still needs a user.
      await expectError(
        store.putListMember(list.address, stranger, randomRecipientIdHex(), 1n),
        NotFoundError,
      );
    });

    it('rotation re-keys remote members too; removal deletes their keys and notifies', async () => {
      const { list, local, remote } = await mixedList();
      const next = newGroup();
      const delta = randomScalar();
      await store.rotateList(list.address, list.group.groupId, next, delta);
      for (const m of [local, remote]) {
        const keys = new Map((await other.listKeysForMember(m.address)).map((k) => [k.groupId, k]));
        expect(keys.get(list.group.groupId)?.rk).toBe(m.rk);
        expect(keys.get(next.groupId)?.rk).toBe(multiplyScalars(delta, m.rk));
      }
      expect(
        (await other.listKeysForMember(remote.address)).every((k) => k.memberGroupId === remoteId),
      ).toBe(true);
      const event = nextEvent(
        other,
        (e) =>
          e.type === 'list-changed' &&
          e.list === list.address &&
          e.members.includes(remote.address),
      );
      await store.removeListMember(list.address, remote.address);
      await event;
      expect(await other.listKeysForMember(remote.address)).toEqual([]);
      expect(await other.listsOfMember(remote.address)).toEqual([]);
      expect((await other.listMembers(list.address)).map((m) => m.address)).toEqual([
        local.address,
      ]);
    });

    it('removing the list removes its remote members', async () => {
      const { list, remote } = await mixedList();
      await store.removeList(list.address);
      expect(await other.listKeysForMember(remote.address)).toEqual([]);
      expect(await other.listsOfMember(remote.address)).toEqual([]);
    });
  });
}
