/**
 * The key-store contract: one suite every adapter must pass (SQLite, single Redis,
 * Sentinel, Redis Cluster). Each adapter's test file supplies a harness: how to open
 * another instance on the same backing store, how to read the raw stored bytes, a way to
 * inject a write fault and, where there is a server, a way to take it away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayKey, hashDeviceCredential, type NewDevice } from '../../src/keystore/index.js';
import { type ContractContext, type ContractHarness } from './contract-context.js';
import { devicesContract } from './contract-devices.js';
import { groupsContract } from './contract-groups.js';
import { listsContract } from './contract-lists.js';
import { pairingContract } from './contract-pairing.js';
import { plumbingContract } from './contract-plumbing.js';
import { remoteMembersContract } from './contract-remote-members.js';
import { usersContract } from './contract-users.js';
import {
  fixture,
  ownerCertificates,
  randomRecipientIdHex,
  randomScalar,
  recipientIdHex,
  uniqueAddress,
} from './fixtures.js';

export type { ContractHarness } from './contract-context.js';

export function describeKeyStoreContract(
  name: string,
  factory: () => Promise<ContractHarness>,
): void {
  describe(`KeyStore contract: ${name}`, () => {
    const groupId = recipientIdHex(fixture('group.der'));
    const certA = fixture('device-a.der');
    const ctx = { groupId } as ContractContext;

    beforeAll(async () => {
      ctx.harness = await factory();
      ctx.gatewayKey = GatewayKey.generate();
      ctx.store = await ctx.harness.open(ctx.gatewayKey);
      ctx.other = await ctx.harness.open(ctx.gatewayKey);
      ctx.credentialHash = await hashDeviceCredential('correct horse battery staple');
      ctx.newDevice = (address: string, name: string, extra: Partial<NewDevice> = {}) => ({
        ownerAddress: address,
        name,
        certificate: certA,
        deviceId: randomRecipientIdHex(),
        client: 'standard',
        credentialHash: ctx.credentialHash,
        keys: new Map([[groupId, randomScalar()]]),
        ...extra,
      });
      ctx.enrolledUser = async () => {
        const address = uniqueAddress();
        await ctx.store.addUser({ address, displayName: 'Test User' });
        const token = await ctx.store.createEnrolmentToken(address, 60_000);
        return (await ctx.store.enrol(address, token, ownerCertificates())).address;
      };
    });

    afterAll(async () => {
      await ctx.store?.close();
      await ctx.other?.close();
      await ctx.harness?.dispose();
    });

    it('answers a health check', async () => {
      await expect(ctx.store.health()).resolves.toBeUndefined();
    });

    usersContract(ctx);
    devicesContract(ctx);
    plumbingContract(ctx);
    listsContract(ctx);
    remoteMembersContract(ctx);
    pairingContract(ctx);
    groupsContract(ctx);
  });
}
