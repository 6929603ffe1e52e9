/**
 * The admin API's mailing-list routes (docs/lists.md). Every route is signed by
 * an enrolled owner: the list owner (create, invite, admit, remove, rotate, policy) or a
 * member (read the list certificate, accept an invite, leave).
 *
 * Remote members (not users here; their own certificate) join through list-remote.ts.
 * The join is the blinded issue with the member's group in the device's place:
 *   member CLI:  α = t·g_member⁻¹ sealed to the list key (the gateway cannot read it),
 *                τ = t⁻¹ to the gateway, which seals it back into the join token;
 *   list owner:  β = g_list·α, sent with the sealed τ;
 *   gateway:     rk = β·τ, checked (rk·G_member = G_list) and stored.
 * The gateway sees τ and β, never α: with α it could compute g_member⁻¹ (α·τ) or g_list.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { KeyStore, MailingList, PostingPolicy } from '../keystore/index.js';
import { POSTING_POLICIES } from '../keystore/index.js';
import { isValidAddress } from '../profiles/index.js';
import {
  certificatePublicPoint,
  gatewayUnblind,
  multiplyPoint,
  scalarFromBytes,
  type Scalar,
} from '../recrypt/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { admitRemote, MAX_CERTIFICATE_BASE64, remoteJoin } from './list-remote.js';
import {
  INVITE_TTL_MS,
  JOIN_TTL_MS,
  openInvite,
  openTau,
  sealInvite,
  sealTau,
} from './list-sealing.js';
import { checkListCertificate } from './list-uploads.js';
import type { Handler, Owner } from './route-types.js';

export { INVITE_TTL_MS, JOIN_TTL_MS } from './list-sealing.js';

interface ListApiContext {
  keyStore: KeyStore;
  adminToken: string;
  clock: () => number;
}
type ListHandler = (
  ctx: ListApiContext,
  signer: Owner,
  params: string[],
  body: Buffer,
) => Promise<[number, unknown]>;

export interface ListRouteDeps<C extends ListApiContext> {
  owner: (handler: Handler<C>) => Handler<C>;
  ownerOf: (req: IncomingMessage) => Owner;
}

export function listRoutes<C extends ListApiContext>(
  deps: ListRouteDeps<C>,
): Array<{ method: string; pattern: RegExp; handler: Handler<C> }> {
  const wrap = (fn: ListHandler): Handler<C> =>
    deps.owner(async (ctx, req, res, params, body) => {
      const [status, value] = await fn(ctx, deps.ownerOf(req), params, body);
      sendJson(res, status, value);
    });
  const L = '([^/]+)';
  return [
    { method: 'POST', pattern: /^\/v1\/owner\/lists$/, handler: wrap(createList) },
    { method: 'GET', pattern: /^\/v1\/owner\/lists$/, handler: wrap(myLists) },
    { method: 'GET', pattern: new RegExp(`^/v1/owner/lists/${L}$`), handler: wrap(showList) },
    { method: 'PATCH', pattern: new RegExp(`^/v1/owner/lists/${L}$`), handler: wrap(updateList) },
    { method: 'DELETE', pattern: new RegExp(`^/v1/owner/lists/${L}$`), handler: wrap(removeList) },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/owner/lists/${L}/invites$`),
      handler: wrap(invite),
    },
    { method: 'POST', pattern: /^\/v1\/owner\/list-joins$/, handler: wrap(acceptInvite) },
    // Unauthenticated: a remote member has no account here (list-remote.ts).
    { method: 'POST', pattern: /^\/v1\/list-joins\/remote$/, handler: remoteJoin },
    { method: 'POST', pattern: new RegExp(`^/v1/owner/lists/${L}/members$`), handler: wrap(admit) },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/owner/lists/${L}/members/${L}$`),
      handler: wrap(removeMember),
    },
    { method: 'POST', pattern: new RegExp(`^/v1/owner/lists/${L}/rotate$`), handler: wrap(rotate) },
  ];
}

// --- helpers -------------------------------------------------------------------------

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

function publicView(list: MailingList) {
  return {
    address: list.address,
    name: list.displayName,
    owner: list.owner,
    policy: list.policy,
    subjectTag: list.subjectTag,
    groupId: list.group.groupId,
    groupCertificate: b64(list.group.certificate),
    formerGroupIds: list.formerGroups.map((g) => g.groupId),
  };
}

async function requireList(ctx: ListApiContext, address: string): Promise<MailingList> {
  const list = await ctx.keyStore.getList(address);
  if (list === null) throw new HttpError(404, 'list not found');
  return list;
}

/** The list, if `signer` owns it; 403 otherwise (404 if there is none). */
export async function ownedList(
  ctx: ListApiContext,
  signer: Owner,
  address: string,
): Promise<MailingList> {
  const list = await requireList(ctx, address);
  if (list.owner !== signer.address) throw new HttpError(403, 'not the list owner');
  return list;
}

function optionalString(
  body: Record<string, unknown>,
  field: string,
  max: number,
): string | undefined {
  if (body[field] === undefined) return undefined;
  const value = body[field];
  if (typeof value !== 'string' || value.length > max)
    throw new HttpError(400, `${field}: expected a string of at most ${max} characters`);
  return value;
}

function optionalPolicy(body: Record<string, unknown>): PostingPolicy | undefined {
  if (body.policy === undefined) return undefined;
  if (!POSTING_POLICIES.includes(body.policy as PostingPolicy))
    throw new HttpError(400, `policy: expected one of ${POSTING_POLICIES.join(', ')}`);
  return body.policy as PostingPolicy;
}

function scalarField(body: Record<string, unknown>, field: string): Scalar {
  try {
    return scalarFromBytes(requireBase64(body, field, 64));
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, `${field}: not a P-256 scalar`);
  }
}

// --- list owner ----------------------------------------------------------------------

const createList: ListHandler = async (ctx, signer, _p, raw) => {
  const body = parseJson(raw);
  const address = requireString(body, 'address', 254);
  if (!isValidAddress(address)) throw new HttpError(400, 'address: malformed');
  const certificate = requireBase64(body, 'groupCertificate');
  const groupId = checkListCertificate(address, signer.owner, certificate);
  const name = optionalString(body, 'name', 128);
  const subjectTag = optionalString(body, 'subjectTag', 64);
  const policy = optionalPolicy(body);
  const list = await ctx.keyStore.createList({
    address,
    owner: signer.address,
    group: { groupId, certificate },
    ...(name !== undefined ? { displayName: name } : {}),
    ...(subjectTag !== undefined ? { subjectTag } : {}),
    ...(policy !== undefined ? { policy } : {}),
  });
  return [201, { list: publicView(list) }];
};

const myLists: ListHandler = async (ctx, signer) => {
  const owned = (await ctx.keyStore.listLists()).filter((l) => l.owner === signer.address);
  const member = await ctx.keyStore.listsOfMember(signer.address);
  return [200, { owned: owned.map(publicView), memberOf: member }];
};

/** Any enrolled owner may read a list's public part (a member needs its certificate to join). */
const showList: ListHandler = async (ctx, signer, params) => {
  const list = await requireList(ctx, params[0]!);
  if (list.owner !== signer.address) return [200, { list: publicView(list) }];
  const members = await ctx.keyStore.listMembers(list.address);
  return [
    200,
    {
      list: publicView(list),
      members: members.map((m) => ({
        address: m.address,
        joined: new Date(m.joined).toISOString(),
        ...(m.certificate !== undefined ? { remote: true } : {}),
      })),
    },
  ];
};

const updateList: ListHandler = async (ctx, signer, params, raw) => {
  const list = await ownedList(ctx, signer, params[0]!);
  const body = parseJson(raw);
  const name = optionalString(body, 'name', 128);
  const subjectTag = optionalString(body, 'subjectTag', 64);
  const policy = optionalPolicy(body);
  const updated = await ctx.keyStore.updateList(list.address, {
    ...(name !== undefined ? { displayName: name } : {}),
    ...(subjectTag !== undefined ? { subjectTag } : {}),
    ...(policy !== undefined ? { policy } : {}),
  });
  return [200, { list: publicView(updated) }];
};

const removeList: ListHandler = async (ctx, signer, params) => {
  const list = await ownedList(ctx, signer, params[0]!);
  await ctx.keyStore.removeList(list.address);
  return [204, null];
};

const invite: ListHandler = async (ctx, signer, params, raw) => {
  const list = await ownedList(ctx, signer, params[0]!);
  const body = parseJson(raw);
  const member = requireString(body, 'member', 254).trim().toLowerCase();
  const remote = body.remote === true;
  const user = await ctx.keyStore.getUser(member);
  if (remote) {
    if (!isValidAddress(member)) throw new HttpError(400, 'member: malformed address');
    if (user !== null)
      throw new HttpError(409, 'member: a user of this gateway; invite them without --remote');
  } else if (user === null || user.owner === null) {
    throw new HttpError(
      404,
      'member: no enrolled user with that address on this gateway (someone elsewhere: invite with --remote)',
    );
  }
  const invited = remote ? member : user!.address;
  const expires = ctx.clock() + INVITE_TTL_MS;
  const token = sealInvite(ctx.adminToken, {
    list: list.address,
    member: invited,
    expires,
    ...(remote ? { remote: true as const } : {}),
  });
  return [
    201,
    {
      invite: token,
      list: list.address,
      member: invited,
      expires: new Date(expires).toISOString(),
      ...(remote ? { remote: true } : {}),
    },
  ];
};

/**
 * The list owner's answer to a join token: β = g_list·α and the gateway's sealed τ. The
 * resulting rk must map the member's group key to the list's (rk·G_member = G_list), so
 * a wrong β is refused instead of stored.
 */
const admit: ListHandler = async (ctx, signer, params, raw) => {
  const list = await ownedList(ctx, signer, params[0]!);
  const body = parseJson(raw);
  const member = requireString(body, 'member', 254).trim().toLowerCase();
  const beta = scalarField(body, 'beta');
  if (body.certificate !== undefined)
    return admitRemote(
      ctx,
      list,
      member,
      beta,
      requireString(body, 'sealedTau', 512),
      requireBase64(body, 'certificate', MAX_CERTIFICATE_BASE64),
    );
  const tau = openTau(
    ctx.adminToken,
    list.address,
    member,
    requireString(body, 'sealedTau', 512),
    ctx.clock(),
  );
  const user = await ctx.keyStore.getUser(member);
  if (user === null || user.owner === null) throw new HttpError(404, 'member: not enrolled');
  const rk = gatewayUnblind(beta, tau);
  const memberPoint = certificatePublicPoint(user.owner.groupCertificate);
  const listPoint = certificatePublicPoint(list.group.certificate);
  if (!Buffer.from(multiplyPoint(memberPoint, rk)).equals(Buffer.from(listPoint)))
    throw new HttpError(
      400,
      'beta: the resulting key does not map the member group to the list group',
    );
  // A join token admits once: replaying it later (say after the member left) is refused.
  const used = createHash('sha256')
    .update(requireString(body, 'sealedTau', 512))
    .digest('hex');
  if (!(await ctx.keyStore.useNonce(`list-join:${list.address}`, used, JOIN_TTL_MS)))
    throw new HttpError(409, 'join token already used');
  await ctx.keyStore.putListMember(list.address, user.address, user.owner.groupId, rk);
  return [201, { list: list.address, member: user.address }];
};

/** The list owner removes anyone; a member may remove themself (unsubscribe). */
const removeMember: ListHandler = async (ctx, signer, params) => {
  const list = await requireList(ctx, params[0]!);
  const member = params[1]!.trim().toLowerCase();
  if (list.owner !== signer.address && member !== signer.address)
    throw new HttpError(403, 'not the list owner');
  await ctx.keyStore.removeListMember(list.address, member);
  return [200, { list: list.address, removed: member, rotateAdvised: true }];
};

/**
 * δ = g_new·g_old⁻¹ from the list owner's CLI; checked (δ·G_old = G_new), used for every
 * member's key in one change, and not kept.
 */
const rotate: ListHandler = async (ctx, signer, params, raw) => {
  const list = await ownedList(ctx, signer, params[0]!);
  const body = parseJson(raw);
  const expected = requireString(body, 'expectedGroupId', 1024);
  const certificate = requireBase64(body, 'groupCertificate');
  const groupId = checkListCertificate(list.address, signer.owner, certificate);
  const delta = scalarField(body, 'delta');
  const oldPoint = certificatePublicPoint(list.group.certificate);
  const newPoint = certificatePublicPoint(certificate);
  if (!Buffer.from(multiplyPoint(oldPoint, delta)).equals(Buffer.from(newPoint)))
    throw new HttpError(400, 'delta: does not map the current list key to the new one');
  const rotated = await ctx.keyStore.rotateList(
    list.address,
    expected,
    { groupId, certificate },
    delta,
  );
  return [200, { list: publicView(rotated) }];
};

// --- member --------------------------------------------------------------------------

/** The member's side: checks the invite, seals τ into the join token the list owner will send back. */
const acceptInvite: ListHandler = async (ctx, signer, _p, raw) => {
  const body = parseJson(raw);
  const inv = openInvite(
    ctx.adminToken,
    requireString(body, 'invite', 1024),
    signer.address,
    ctx.clock(),
  );
  const list = await requireList(ctx, inv.list);
  const tau = scalarField(body, 'tau');
  const sealedTau = sealTau(
    ctx.adminToken,
    list.address,
    signer.address,
    ctx.clock() + JOIN_TTL_MS,
    tau,
  );
  return [
    200,
    { list: list.address, member: signer.address, groupId: list.group.groupId, sealedTau },
  ];
};
