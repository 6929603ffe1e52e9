/**
 * The owner's side of mailing lists (docs/lists.md). The list owner's CLI makes
 * and keeps the list group secret g_list (never sent anywhere); a member's CLI joins with
 * its group secret g_member by the blinded issue (list-join.ts), so the gateway ends with
 * rk_{list→member} = g_list·g_member⁻¹ and nothing else. Rotation sends δ = g_new·g_old⁻¹
 * once; the gateway re-keys every remaining member with it.
 */
import {
  blindDeviceSecret,
  certificatePublicPoint,
  invertScalar,
  issueGroupCertificate,
  multiplyScalars,
  ownerRespond,
  publicPoint,
  randomScalar,
  recipientIdOf,
  scalarToBytes,
  type Scalar,
} from '../recrypt/index.js';
import { ownerClient } from './common.js';
import { OwnerError } from './errors.js';
import { callGateway } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';
import { decodeJoinToken, encodeJoinToken, openAlpha, sealAlpha } from './list-join.js';
import { pemToDer, type Invitation } from './remote-join.js';

export type PostingPolicy = 'members' | 'moderated' | 'announce' | 'open';

/** What the list owner keeps: every list group secret, the current one last. */
export interface ListSecrets {
  address: string;
  groups: Array<{ groupId: string; secret: Scalar; certificate: Uint8Array }>;
}

export interface ListView {
  address: string;
  name: string;
  owner: string;
  policy: PostingPolicy;
  subjectTag: string;
  groupId: string;
  groupCertificate: string;
  formerGroupIds: string[];
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const path = (list: string, rest = ''): string =>
  `/v1/owner/lists/${encodeURIComponent(list.toLowerCase())}${rest}`;

function current(secrets: ListSecrets) {
  const group = secrets.groups[secrets.groups.length - 1];
  if (group === undefined)
    throw new OwnerError('no-secret', `no group secret for ${secrets.address}`);
  return group;
}

async function newGroup(key: OwnerKey, address: string) {
  const secret = randomScalar();
  const certificate = await issueGroupCertificate({
    ca: key.ownerCaCertificate,
    caSecret: key.ownerCaSecret,
    publicKey: publicPoint(secret),
    address,
    now: new Date(),
  });
  return { secret, certificate, groupId: Buffer.from(recipientIdOf(certificate)).toString('hex') };
}

export interface CreateListOptions {
  address: string;
  name?: string;
  policy?: PostingPolicy;
  subjectTag?: string;
}

/** Makes the list group key (kept by the caller), uploads its certificate. */
export async function createList(
  key: OwnerKey,
  options: CreateListOptions,
): Promise<{ list: ListView; secrets: ListSecrets }> {
  const address = options.address.trim().toLowerCase();
  const group = await newGroup(key, address);
  const reply = await callGateway<{ list: ListView }>(ownerClient(key), 'POST', '/v1/owner/lists', {
    address,
    groupCertificate: b64(group.certificate),
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.policy !== undefined ? { policy: options.policy } : {}),
    ...(options.subjectTag !== undefined ? { subjectTag: options.subjectTag } : {}),
  });
  return { list: reply.list, secrets: { address, groups: [group] } };
}

export async function showList(
  key: OwnerKey,
  list: string,
): Promise<{
  list: ListView;
  members?: Array<{ address: string; joined: string; remote?: boolean }>;
}> {
  return callGateway(ownerClient(key), 'GET', path(list));
}

export async function setListPolicy(
  key: OwnerKey,
  list: string,
  update: { policy?: PostingPolicy; subjectTag?: string; name?: string },
): Promise<ListView> {
  return (await callGateway<{ list: ListView }>(ownerClient(key), 'PATCH', path(list), update))
    .list;
}

/** An invite token for `member` (an enrolled user of this gateway). */
export async function inviteMember(key: OwnerKey, list: string, member: string): Promise<string> {
  const reply = await callGateway<{ invite: string }>(
    ownerClient(key),
    'POST',
    path(list, '/invites'),
    {
      member,
    },
  );
  return reply.invite;
}

/**
 * An invitation for someone who is not a user of this gateway: the invite with this
 * CLI's gateway URL and trust anchor, for `recrypt list join` on their machine.
 */
export async function inviteRemoteMember(
  key: OwnerKey,
  list: string,
  member: string,
): Promise<Invitation> {
  const reply = await callGateway<{ invite: string; list: string; member: string }>(
    ownerClient(key),
    'POST',
    path(list, '/invites'),
    { member, remote: true },
  );
  return {
    gateway: key.gateway,
    ...(key.gatewayCa !== null
      ? { ca: Buffer.from(pemToDer(key.gatewayCa)).toString('base64') }
      : {}),
    list: reply.list,
    member: reply.member,
    invite: reply.invite,
  };
}

/**
 * The member's step: blinds its group secret (α sealed to the list key, τ to the
 * gateway) and returns the join token to give the list owner.
 */
export async function acceptInvite(key: OwnerKey, list: string, invite: string): Promise<string> {
  const { list: view } = await showList(key, list);
  const listCertificate = new Uint8Array(Buffer.from(view.groupCertificate, 'base64'));
  const request = blindDeviceSecret(key.groupSecret);
  const reply = await callGateway<{ sealedTau: string; groupId: string; list: string }>(
    ownerClient(key),
    'POST',
    '/v1/owner/list-joins',
    { invite, tau: b64(scalarToBytes(request.toGateway)) },
  );
  if (reply.groupId !== view.groupId || reply.list !== view.address)
    throw new OwnerError('gateway-refused', 'the list changed during the join; accept again');
  return encodeJoinToken({
    list: view.address,
    member: key.address,
    groupId: view.groupId,
    sealedAlpha: sealAlpha(request.toOwner, certificatePublicPoint(listCertificate), view.groupId),
    sealedTau: reply.sealedTau,
  });
}

/** The list owner's step: β = g_list·α, sent with the gateway's sealed τ. */
export async function admitMember(
  key: OwnerKey,
  secrets: ListSecrets,
  joinToken: string,
): Promise<string> {
  const token = decodeJoinToken(joinToken);
  if (token.list !== secrets.address)
    throw new OwnerError(
      'invalid-argument',
      `join token is for ${token.list}, not ${secrets.address}`,
    );
  const group = current(secrets);
  if (token.groupId !== group.groupId)
    throw new OwnerError(
      'invalid-argument',
      'join token was made for an earlier list key; ask the member to accept again',
    );
  const beta = ownerRespond(
    group.secret,
    openAlpha(token.sealedAlpha, group.secret, group.groupId),
  );
  await callGateway(ownerClient(key), 'POST', path(secrets.address, '/members'), {
    member: token.member,
    beta: b64(scalarToBytes(beta)),
    sealedTau: token.sealedTau,
    ...(token.certificate !== undefined ? { certificate: token.certificate } : {}),
  });
  return token.member;
}

export async function removeMember(key: OwnerKey, list: string, member: string): Promise<void> {
  await callGateway(
    ownerClient(key),
    'DELETE',
    path(list, `/members/${encodeURIComponent(member)}`),
  );
}

/**
 * A new list group; δ = g_new·g_old⁻¹ goes to the gateway once. Returns the secrets with
 * the new group appended (the old ones stay: they read old posts).
 */
export async function rotateList(key: OwnerKey, secrets: ListSecrets): Promise<ListSecrets> {
  const old = current(secrets);
  const next = await newGroup(key, secrets.address);
  const delta = multiplyScalars(next.secret, invertScalar(old.secret));
  await callGateway(ownerClient(key), 'POST', path(secrets.address, '/rotate'), {
    expectedGroupId: old.groupId,
    groupCertificate: b64(next.certificate),
    delta: b64(scalarToBytes(delta)),
  });
  return { address: secrets.address, groups: [...secrets.groups, next] };
}
