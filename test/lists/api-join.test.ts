/**
 * Owner side: the list owner's and the member's owner libraries talk to the real
 * admin API (TLS, signed requests, SQLite key store). The blinded join leaves the gateway
 * with rk_{list→member} = g_list·g_member⁻¹ only; removal and rotation through the API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OwnerKey } from '../../src/owner/key-file.js';
import {
  acceptInvite,
  admitMember,
  createList,
  inviteMember,
  removeMember,
  rotateList,
  setListPolicy,
  showList,
  type ListSecrets,
} from '../../src/owner/lists.js';
import { decodeJoinToken, encodeJoinToken } from '../../src/owner/list-join.js';
import { OwnerError } from '../../src/owner/errors.js';
import {
  invertScalar,
  multiplyScalars,
  randomScalar,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import { api, startApiGateway, type ApiGateway, type Signer } from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';

const LIST = 'dev@example.org';

async function refusal(promise: Promise<unknown>): Promise<number | undefined> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OwnerError);
  return (error as OwnerError).status;
}

describe('list join, removal and rotation through the admin API', () => {
  let gw: ApiGateway;
  const keys: Record<string, OwnerKey> = {};
  const signers: Record<string, Signer> = {};
  let secrets: ListSecrets;

  async function enrolled(address: string): Promise<OwnerKey> {
    const { owner, key } = await enrolOwner(gw, address);
    signers[address.split('@')[0]!] = owner.signer;
    return key;
  }

  async function join(member: OwnerKey): Promise<string> {
    const invite = await inviteMember(keys.owner!, LIST, member.address);
    const joinToken = await acceptInvite(member, LIST, invite);
    expect(await admitMember(keys.owner!, secrets, joinToken)).toBe(member.address);
    return joinToken;
  }

  const gList = () => secrets.groups[secrets.groups.length - 1]!.secret;

  beforeAll(async () => {
    gw = await startApiGateway();
    for (const name of ['owner', 'alice', 'bob', 'mallory'])
      keys[name] = await enrolled(`${name}@example.org`);
    ({ secrets } = await createList(keys.owner!, {
      address: LIST,
      name: 'Developers',
      policy: 'members',
      subjectTag: '[dev]',
    }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('creates the list with the owner CLI’s certificate; the gateway holds no list secret', async () => {
    const { list, members } = await showList(keys.owner!, LIST);
    expect(list).toMatchObject({ address: LIST, owner: 'owner@example.org', policy: 'members' });
    expect(members).toEqual([]);
    expect(list.groupId).toBe(secrets.groups[0]!.groupId);
    const stored = await gw.keyStore.getList(LIST);
    expect(stored?.group.groupId).toBe(secrets.groups[0]!.groupId);
  });

  it('a blinded join stores exactly g_list·g_member⁻¹ for the member', async () => {
    const aliceToken = await join(keys.alice!);
    await join(keys.bob!);
    // A join token admits once.
    expect(await refusal(admitMember(keys.owner!, secrets, aliceToken))).toBe(409);
    for (const who of [keys.alice!, keys.bob!]) {
      const stored = await gw.keyStore.listKeysForMember(who.address);
      expect(stored.map((k) => k.rk)).toEqual([
        multiplyScalars(gList(), invertScalar(who.groupSecret)),
      ]);
    }
  });

  it('refuses joins that are not the invited member’s or not the list owner’s', async () => {
    const invite = await inviteMember(keys.owner!, LIST, keys.alice!.address);
    // Mallory cannot use Alice's invite, nor invite herself, nor admit anyone.
    expect(await refusal(acceptInvite(keys.mallory!, LIST, invite))).toBe(403);
    expect(await refusal(inviteMember(keys.mallory!, LIST, keys.mallory!.address))).toBe(403);
    const own = await inviteMember(keys.owner!, LIST, keys.mallory!.address);
    const token = await acceptInvite(keys.mallory!, LIST, own);
    expect(await refusal(admitMember(keys.mallory!, { ...secrets }, token))).toBe(403);
    // A τ sealed for Mallory does not serve for another member.
    const forged = encodeJoinToken({ ...decodeJoinToken(token), member: keys.alice!.address });
    expect(await refusal(admitMember(keys.owner!, secrets, forged))).toBe(400);
    // A β that does not give a key mapping the member group to the list group is refused.
    const t = decodeJoinToken(token);
    const bad = await api(gw, 'POST', `/v1/owner/lists/${encodeURIComponent(LIST)}/members`, {
      body: {
        member: t.member,
        beta: Buffer.from(scalarToBytes(randomScalar())).toString('base64'),
        sealedTau: t.sealedTau,
      },
      sign: signers.owner!,
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toMatch(/beta/);
    expect(await gw.keyStore.listsOfMember(keys.mallory!.address)).toEqual([]);
  });

  it('policy changes go through the list owner only', async () => {
    expect((await setListPolicy(keys.owner!, LIST, { policy: 'announce' })).policy).toBe(
      'announce',
    );
    expect(await refusal(setListPolicy(keys.alice!, LIST, { policy: 'open' }))).toBe(403);
    expect((await gw.keyStore.getList(LIST))?.policy).toBe('announce');
  });

  it('removal deletes the key at once; rotation re-keys the rest with δ', async () => {
    const bobBefore = (await gw.keyStore.listKeysForMember(keys.bob!.address))[0]!.rk;
    await removeMember(keys.owner!, LIST, keys.alice!.address);
    expect(await gw.keyStore.listKeysForMember(keys.alice!.address)).toEqual([]);
    const old = secrets.groups[0]!;
    secrets = await rotateList(keys.owner!, secrets);
    const { list } = await showList(keys.bob!, LIST);
    expect(list.groupId).toBe(secrets.groups[1]!.groupId);
    expect(list.formerGroupIds).toEqual([old.groupId]);
    const bobKeys = new Map(
      (await gw.keyStore.listKeysForMember(keys.bob!.address)).map((k) => [k.groupId, k.rk]),
    );
    expect(bobKeys.get(old.groupId)).toBe(bobBefore);
    expect(bobKeys.get(list.groupId)).toBe(
      multiplyScalars(gList(), invertScalar(keys.bob!.groupSecret)),
    );
    // A member may leave on their own (List-Unsubscribe's admin side).
    await removeMember(keys.bob!, LIST, keys.bob!.address);
    expect(await gw.keyStore.listKeysForMember(keys.bob!.address)).toEqual([]);
  });

  it('refuses a rotation whose δ does not map the current key to the new one', async () => {
    const wrongSecret = {
      ...secrets,
      groups: [
        ...secrets.groups.slice(0, -1),
        { ...secrets.groups.at(-1)!, secret: randomScalar() },
      ],
    };
    expect(await refusal(rotateList(keys.owner!, wrongSecret))).toBe(400);
    expect((await gw.keyStore.getList(LIST))?.group.groupId).toBe(secrets.groups.at(-1)!.groupId);
  });
});
