/** Contract section: pending device pairings (src/keystore/pairing.ts). */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayKey,
  KeyStoreArgumentError,
  KeyStoreError,
  LimitError,
  NotFoundError,
  type KeyStore,
  type NewPairingRequest,
} from '../../src/keystore/index.js';
import { type ContractContext, expectError } from './contract-context.js';
import { fixture, randomScalar, uniqueAddress } from './fixtures.js';

export function pairingContract(ctx: ContractContext): void {
  let store: KeyStore;
  let other: KeyStore;
  const certificate = fixture('device-a.der');
  const request = (address: string, extra: Partial<NewPairingRequest> = {}): NewPairingRequest => ({
    ownerAddress: address,
    name: 'phone',
    client: 'standard',
    certificateRequest: certificate,
    sealedAlpha: 'c2VhbGVkLWFscGhh',
    groupId: ctx.groupId,
    tau: randomScalar(),
    credentialHash: ctx.credentialHash,
    pickupHash: 'ab'.repeat(32),
    invite: 'sealed-invite',
    tag: 'mac-of-the-request',
    expires: Date.now() + 60_000,
    ...extra,
  });
  beforeAll(() => {
    ({ store, other } = ctx);
  });

  describe('device pairing requests', () => {
    it('stores a request with τ, lists and finds it from another instance', async () => {
      const address = await ctx.enrolledUser();
      const tau = randomScalar();
      const added = await store.addPairingRequest(request(address, { tau }), 4);
      expect(added.id).toMatch(/^[0-9a-f]{16}$/);
      const found = await other.getPairingRequest(address, added.id);
      expect(found).toMatchObject({ id: added.id, name: 'phone', tau, approvedCertificate: null });
      expect(Buffer.from(found!.certificateRequest).equals(Buffer.from(certificate))).toBe(true);
      expect((await other.listPairingRequests(address)).map((r) => r.id)).toEqual([added.id]);
    });

    it('approves once: τ is dropped, the certificate kept; a second approve is NotFound', async () => {
      const address = await ctx.enrolledUser();
      const added = await store.addPairingRequest(request(address), 4);
      const results = await Promise.allSettled([
        store.approvePairingRequest(address, added.id, certificate),
        other.approvePairingRequest(address, added.id, certificate),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(loser.reason).toBeInstanceOf(NotFoundError);
      const after = await store.getPairingRequest(address, added.id);
      expect(after?.tau).toBeNull();
      expect(Buffer.from(after!.approvedCertificate!).equals(Buffer.from(certificate))).toBe(true);
      await expectError(store.approvePairingRequest(address, added.id, certificate), NotFoundError);
    });

    it('bounds the pending requests per user and forgets expired ones', async () => {
      const address = await ctx.enrolledUser();
      await store.addPairingRequest(request(address, { expires: Date.now() + 1500 }), 2);
      await store.addPairingRequest(request(address), 2);
      await expectError(store.addPairingRequest(request(address), 2), LimitError);
      await new Promise((resolve) => setTimeout(resolve, 1600));
      expect(await store.listPairingRequests(address)).toHaveLength(1);
      await store.addPairingRequest(request(address), 2);
      expect(await store.listPairingRequests(address)).toHaveLength(2);
    });

    it('refuses an unknown user and bad input, and removes a request', async () => {
      await expectError(store.addPairingRequest(request(uniqueAddress()), 4), NotFoundError);
      const address = await ctx.enrolledUser();
      await expectError(
        store.addPairingRequest(request(address, { expires: Date.now() - 1 }), 4),
        KeyStoreArgumentError,
      );
      await expectError(
        store.addPairingRequest(request(address, { pickupHash: 'x' }), 4),
        KeyStoreArgumentError,
      );
      const added = await store.addPairingRequest(request(address), 4);
      expect(await other.removePairingRequest(address, added.id)).toBe(true);
      expect(await store.removePairingRequest(address, added.id)).toBe(false);
      expect(await store.getPairingRequest(address, added.id)).toBeNull();
      await expectError(store.approvePairingRequest(address, added.id, certificate), NotFoundError);
      expect(await store.getPairingRequest(address, 'not-an-id')).toBeNull();
    });

    it('a removed user takes its requests along', async () => {
      const address = await ctx.enrolledUser();
      await store.addPairingRequest(request(address), 4);
      await store.removeUser(address);
      await store.addUser({ address });
      expect(await store.listPairingRequests(address)).toEqual([]);
    });

    it('never stores τ in the clear; another gateway key cannot read it', async () => {
      const address = await ctx.enrolledUser();
      const tau = randomScalar();
      const added = await store.addPairingRequest(request(address, { tau }), 4);
      const bytes = Buffer.from(tau.toString(16).padStart(64, '0'), 'hex');
      const forms = [
        bytes,
        Buffer.from(bytes.toString('hex')),
        Buffer.from(bytes.toString('base64')),
      ];
      for (const value of await ctx.harness.rawContents())
        for (const form of forms) expect(value.includes(form)).toBe(false);
      const stranger = await ctx.harness.open(GatewayKey.generate());
      try {
        const err = await expectError(stranger.getPairingRequest(address, added.id), KeyStoreError);
        expect(err.code).toBe('corrupt');
      } finally {
        await stranger.close();
      }
    });
  });
}
