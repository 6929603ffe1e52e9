/** Contract sections: users and enrolment. */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DuplicateError,
  type KeyStore,
  KeyStoreArgumentError,
  NotFoundError,
  TokenInvalidError,
} from '../../src/keystore/index.js';
import { fixture, ownerCertificates, recipientIdHex, uniqueAddress } from './fixtures.js';
import { type ContractContext, expectError, nextEvent } from './contract-context.js';

export function usersContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  const enrolledUser = (): Promise<string> => ctx.enrolledUser();
  beforeAll(() => {
    ({ store, other } = ctx);
  });

  describe('users', () => {
    it('adds, gets, lists and removes a user, normalising the address to lower case', async () => {
      const raw = uniqueAddress('Alice');
      const user = await store.addUser({ address: raw, displayName: 'Alice Example' });
      const normal = raw.toLowerCase();
      expect(normal).not.toBe(raw);
      expect(user).toMatchObject({
        address: normal,
        displayName: 'Alice Example',
        enrolment: 'pending',
        owner: null,
      });
      expect(await store.getUser(raw.toUpperCase())).toMatchObject({
        address: normal,
      });
      expect((await other.listUsers()).map((u) => u.address)).toContain(normal);
      await store.removeUser(normal);
      expect(await store.getUser(normal)).toBeNull();
      expect((await store.listUsers()).map((u) => u.address)).not.toContain(normal);
    });

    it('lists users sorted by address', async () => {
      const a = await store.addUser({ address: uniqueAddress('sort') });
      const b = await store.addUser({ address: uniqueAddress('sort') });
      const listed = (await store.listUsers()).map((u) => u.address);
      expect(listed).toEqual([...listed].sort());
      expect(listed).toEqual(expect.arrayContaining([a.address, b.address]));
    });

    it('refuses a duplicate user, whatever the domain case', async () => {
      const address = uniqueAddress();
      await store.addUser({ address });
      const err = await expectError(
        other.addUser({ address: address.toLowerCase() }),
        DuplicateError,
      );
      expect(err.what).toBe('user');
    });

    it('returns null for an unknown user and NotFoundError for removing one', async () => {
      expect(await store.getUser(uniqueAddress('nobody'))).toBeNull();
      await expectError(store.removeUser(uniqueAddress('nobody')), NotFoundError);
    });

    it('refuses malformed addresses and names', async () => {
      for (const bad of [
        '',
        'no-at-sign',
        '@example.org',
        'x@',
        'a b@example.org',
        'x@exa..mple.org',
        'x{y}@example.org',
      ]) {
        await expectError(store.addUser({ address: bad }), KeyStoreArgumentError);
      }
      await expectError(
        store.addUser({ address: uniqueAddress(), displayName: 'bad\nname' }),
        KeyStoreArgumentError,
      );
    });
  });

  describe('enrolment', () => {
    it('enrols with a token once: certificates stored, a second use refused', async () => {
      const address = (await store.addUser({ address: uniqueAddress() })).address;
      const token = await store.createEnrolmentToken(address, 60_000);
      const owner = ownerCertificates();
      const user = await store.enrol(address, token, owner);
      expect(user.enrolment).toBe('enrolled');
      expect(user.owner).toEqual(owner);
      expect((await other.getUser(address))?.owner).toEqual(owner);
      const err = await expectError(store.enrol(address, token, owner), TokenInvalidError);
      expect(err.reason).toBe('used');
    });

    it('refuses a wrong token, an expired token and a replaced token', async () => {
      const address = (await store.addUser({ address: uniqueAddress() })).address;
      const first = await store.createEnrolmentToken(address, 60_000);
      expect(
        (
          await expectError(
            store.enrol(address, `${first}x`, ownerCertificates()),
            TokenInvalidError,
          )
        ).reason,
      ).toBe('invalid');
      const second = await store.createEnrolmentToken(address, 60_000);
      expect(
        (await expectError(store.enrol(address, first, ownerCertificates()), TokenInvalidError))
          .reason,
      ).toBe('invalid');
      const short = await store.createEnrolmentToken(address, 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(
        (await expectError(store.enrol(address, short, ownerCertificates()), TokenInvalidError))
          .reason,
      ).toBe('expired');
      expect(
        (await expectError(store.enrol(address, second, ownerCertificates()), TokenInvalidError))
          .reason,
      ).toBe('invalid');
      expect((await store.getUser(address))?.enrolment).toBe('pending');
    });

    it('lets exactly one of many concurrent enrolments with one token win', async () => {
      const address = (await store.addUser({ address: uniqueAddress() })).address;
      const token = await store.createEnrolmentToken(address, 60_000);
      const attempts = Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? store : other).enrol(address, token, ownerCertificates()),
      );
      const results = await Promise.allSettled(attempts);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(TokenInvalidError);
      }
    });

    it('never enrols an enrolled user again, whatever the token', async () => {
      const address = await enrolledUser();
      const before = (await store.getUser(address))!.owner;
      const fresh = await store.createEnrolmentToken(address, 60_000);
      const other = {
        ...ownerCertificates(),
        groupCertificate: fixture('device-b.der'),
        groupId: recipientIdHex(fixture('device-b.der')),
      };
      expect(
        (await expectError(store.enrol(address, fresh, other), TokenInvalidError)).reason,
      ).toBe('used');
      expect((await store.getUser(address))?.owner).toEqual(before);
    });

    it('resets an enrolment: devices revoked and notified, owner and profile gone, enrolment open again', async () => {
      const address = await enrolledUser();
      const a = await store.addDevice(ctx.newDevice(address, 'laptop'));
      const b = await store.addDevice(ctx.newDevice(address, 'phone'));
      // b's own revocation is announced asynchronously (Redis pub/sub): wait for it, so
      // that only the reset's announcements can reach the subscription below.
      const bAnnounced = nextEvent(other, (e) => e.type === 'device-revoked' && e.id === b.id);
      await store.revokeDevice(address, b.id);
      await bAnnounced;
      const c = await store.addDevice(ctx.newDevice(address, 'tablet'));
      await store.putProfile(address, 'signed profile');
      const seen: string[] = [];
      const off = other.subscribe((e) => {
        if (e.type === 'device-revoked' && e.address === address) seen.push(e.id);
      });
      const last = nextEvent(other, (e) => e.type === 'device-revoked' && e.id === c.id);
      const revoked = await store.resetEnrolment(address.toUpperCase());
      await last;
      off();
      expect(revoked.map((d) => d.id)).toEqual([a.id, c.id]);
      expect(revoked.every((d) => d.revoked !== null)).toBe(true);
      expect(seen.sort()).toEqual([a.id, c.id].sort());
      expect(await other.listActiveDevices(address)).toEqual([]);
      expect((await other.keysForDevice(address, a.id)).size).toBe(0);
      expect(await other.getProfile(address)).toBeNull();
      expect(await other.getUser(address)).toMatchObject({ enrolment: 'pending', owner: null });
      // Enrolment is open again with a new token, and a device name can be reused.
      const token = await other.createEnrolmentToken(address, 60_000);
      expect((await store.enrol(address, token, ownerCertificates())).enrolment).toBe('enrolled');
      expect((await store.addDevice(ctx.newDevice(address, 'laptop'))).name).toBe('laptop');
      await expectError(store.resetEnrolment(uniqueAddress('nobody')), NotFoundError);
    });

    it('needs a user for tokens, and an enrolled user for new certificates', async () => {
      await expectError(store.createEnrolmentToken(uniqueAddress('nobody'), 60_000), NotFoundError);
      await expectError(
        store.enrol(uniqueAddress('nobody'), 'token', ownerCertificates()),
        NotFoundError,
      );
      const pending = (await store.addUser({ address: uniqueAddress() })).address;
      await expectError(store.setOwnerCertificates(pending, ownerCertificates()), NotFoundError);
      const address = await enrolledUser();
      const rekeyed = {
        ...ownerCertificates(),
        groupCertificate: fixture('device-b.der'),
        groupId: recipientIdHex(fixture('device-b.der')),
      };
      const user = await store.setOwnerCertificates(address, rekeyed);
      expect(user.owner).toEqual(rekeyed);
      expect((await other.getUser(address))?.owner?.groupId).toBe(rekeyed.groupId);
    });
  });
}
