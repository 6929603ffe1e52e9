/**
 * Mailbox key rotation, full mode (docs/design.md §6): every remaining device re-runs the
 * blinded issue for the new group g′, so no key the gateway held before — nor a revoked
 * device's d with it — tells anything about g′.
 *
 *   owner CLI:  POST /v1/owner/rotation {mode: "full", expectedGroupId, groupCertificate,
 *               profile} → the rotation is pending; the MX keeps the current group
 *   device:     POST /v1/device/rotation {address, password} → the pending group certificate
 *               and the owner CA (the device checks both against its own certificate)
 *               POST /v1/device/rekey {address, password, groupId, sealedAlpha, tau, mac}
 *   owner CLI:  GET /v1/owner/rotation → the devices and their requests (sealed α, MAC);
 *               POST /v1/owner/rotation/keys {groupId, responses: [{id, beta}]}
 *                 rk′ = β·τ, stored only if rk′·D = G′ (for every response, or none)
 *               POST /v1/owner/rotation/commit {groupId} → group, profile and MX switch in
 *                 one change, refused (409) while an active device has no key for g′
 *               DELETE /v1/owner/rotation → the pending rotation is dropped
 *
 * The device authenticates to the gateway with its IMAP password, and to the owner with a
 * MAC under x(d·C) = x(c·D) (C the owner CA key), which the gateway, holding neither d
 * nor c, cannot forge: it cannot have the owner answer an α of its own choosing.
 */
import type { IncomingMessage } from 'node:http';
import {
  authenticateDevice,
  NotFoundError,
  StaleStateError,
  type KeyStore,
} from '../keystore/index.js';
import {
  certificatePublicPoint,
  gatewayUnblind,
  multiplyPoint,
  scalarFromBytes,
  type Scalar,
} from '../recrypt/index.js';
import { noteAuditActor } from './audit.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { checkNewGroup } from './rotation.js';
import type { Handler, Owner } from './route-types.js';

/** How long a full rotation waits for the devices before it is dropped. */
export const FULL_ROTATION_TTL_MS = 14 * 24 * 3600 * 1000;

interface RotationContext {
  keyStore: KeyStore;
  clock: () => number;
}
type Reply = Promise<[number, unknown]>;

export interface FullRotationDeps<C extends RotationContext> {
  owner: (handler: Handler<C>) => Handler<C>;
  ownerOf: (req: IncomingMessage) => Owner;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

export function fullRotationRoutes<C extends RotationContext>(
  deps: FullRotationDeps<C>,
): Array<{ method: string; pattern: RegExp; handler: Handler<C> }> {
  const signed = (fn: (ctx: C, owner: Owner, body: Buffer) => Reply): Handler<C> =>
    deps.owner(async (ctx, req, res, _params, body) => {
      const [status, value] = await fn(ctx, deps.ownerOf(req), body);
      sendJson(res, status, value);
    });
  const device =
    (fn: (ctx: C, body: Buffer) => Reply): Handler<C> =>
    async (ctx, req, res, _params, body) => {
      noteAuditActor(req, 'rekey-device');
      const [status, value] = await fn(ctx, body);
      sendJson(res, status, value);
    };
  return [
    { method: 'GET', pattern: /^\/v1\/owner\/rotation$/, handler: signed(status) },
    { method: 'DELETE', pattern: /^\/v1\/owner\/rotation$/, handler: signed(cancel) },
    { method: 'POST', pattern: /^\/v1\/owner\/rotation\/keys$/, handler: signed(answer) },
    { method: 'POST', pattern: /^\/v1\/owner\/rotation\/commit$/, handler: signed(commit) },
    { method: 'POST', pattern: /^\/v1\/device\/rotation$/, handler: device(pendingForDevice) },
    { method: 'POST', pattern: /^\/v1\/device\/rekey$/, handler: device(rekey) },
  ];
}

/** `POST /v1/owner/rotation` with mode "full": called from rotation.ts. */
export async function startFull(
  ctx: RotationContext,
  owner: Owner,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const group = checkNewGroup(owner, body, ctx.clock());
  const pending = await ctx.keyStore.startRotation(
    owner.address,
    {
      fromGroupId: owner.owner.groupId,
      group: { groupId: group.groupId, certificate: group.certificate },
      profile: group.profile,
    },
    FULL_ROTATION_TTL_MS,
  );
  return {
    address: owner.address,
    mode: 'full',
    pending: true,
    groupId: pending.group.groupId,
    expires: new Date(pending.expires).toISOString(),
    devices: (await ctx.keyStore.listActiveDevices(owner.address)).length,
  };
}

async function requirePending(ctx: RotationContext, owner: Owner, groupId?: string) {
  const pending = await ctx.keyStore.pendingRotation(owner.address);
  if (pending === null || (groupId !== undefined && pending.group.groupId !== groupId))
    throw new HttpError(409, 'no full rotation to this group is pending');
  return pending;
}

async function deviceStates(ctx: RotationContext, owner: Owner, groupId: string) {
  const devices = await ctx.keyStore.listActiveDevices(owner.address);
  const states = [];
  for (const device of devices) {
    const keys = await ctx.keyStore.keysForDevice(owner.address, device.id);
    states.push({ device, keyed: keys.has(groupId) });
  }
  return states;
}

async function status(ctx: RotationContext, owner: Owner): Reply {
  const pending = await ctx.keyStore.pendingRotation(owner.address);
  if (pending === null) return [200, { pending: null }];
  const states = await deviceStates(ctx, owner, pending.group.groupId);
  const byId = new Map(states.map((s) => [s.device.id, s.device]));
  const requests = (await ctx.keyStore.rekeyRequests(owner.address))
    .filter((r) => byId.has(r.id))
    .map((r) => ({
      id: r.id,
      certificate: b64(byId.get(r.id)!.certificate),
      sealedAlpha: r.sealedAlpha,
      mac: r.mac,
    }));
  return [
    200,
    {
      pending: {
        groupId: pending.group.groupId,
        started: new Date(pending.started).toISOString(),
        expires: new Date(pending.expires).toISOString(),
      },
      devices: states.map((s) => ({ id: s.device.id, name: s.device.name, keyed: s.keyed })),
      requests,
    },
  ];
}

async function cancel(ctx: RotationContext, owner: Owner): Reply {
  await ctx.keyStore.cancelRotation(owner.address);
  return [200, { pending: null }];
}

function scalarOf(item: Record<string, unknown>, field: string): Scalar {
  const bytes = requireBase64(item, field, 64);
  try {
    return scalarFromBytes(bytes);
  } catch {
    throw new HttpError(400, `${field}: not a P-256 scalar`);
  }
}

/** β for each device that asked: rk′ = β·τ, every one checked before any is stored. */
async function answer(ctx: RotationContext, owner: Owner, raw: Buffer): Reply {
  const body = parseJson(raw);
  const groupId = requireString(body, 'groupId', 1024);
  const pending = await requirePending(ctx, owner, groupId);
  if (!Array.isArray(body.responses) || body.responses.length > 1024)
    throw new HttpError(400, 'responses: expected an array of {id, beta}');
  const requests = new Map((await ctx.keyStore.rekeyRequests(owner.address)).map((r) => [r.id, r]));
  const devices = new Map(
    (await ctx.keyStore.listActiveDevices(owner.address)).map((d) => [d.id, d]),
  );
  const newPoint = Buffer.from(certificatePublicPoint(pending.group.certificate));
  const keys: Array<[string, Scalar]> = [];
  for (const entry of body.responses as unknown[]) {
    if (typeof entry !== 'object' || entry === null)
      throw new HttpError(400, 'responses: expected {id, beta} objects');
    const item = entry as Record<string, unknown>;
    const id = requireString(item, 'id', 16);
    const request = requests.get(id);
    const device = devices.get(id);
    if (request === undefined || device === undefined)
      throw new HttpError(409, `no re-key request of an active device ${id}`);
    const rk = gatewayUnblind(scalarOf(item, 'beta'), request.tau);
    const maps = Buffer.from(multiplyPoint(certificatePublicPoint(device.certificate), rk));
    if (!maps.equals(newPoint))
      throw new HttpError(400, `beta for ${device.name}: rk·D is not the new group key`);
    keys.push([id, rk]);
  }
  for (const [id, rk] of keys) {
    await ctx.keyStore.putRecryptionKey(owner.address, id, groupId, rk);
    await ctx.keyStore.removeRekeyRequest(owner.address, id);
  }
  const states = await deviceStates(ctx, owner, groupId);
  return [
    200,
    { keyed: keys.length, missing: states.filter((s) => !s.keyed).map((s) => s.device.name) },
  ];
}

async function commit(ctx: RotationContext, owner: Owner, raw: Buffer): Reply {
  const body = parseJson(raw);
  const pending = await requirePending(ctx, owner, requireString(body, 'groupId', 1024));
  const user = await ctx.keyStore.rotateGroup(owner.address, {
    fromGroupId: pending.fromGroupId,
    group: pending.group,
    profile: pending.profile,
    keys: new Map(),
  });
  return [
    200,
    {
      address: user.address,
      mode: 'full',
      groupId: user.owner!.groupId,
      formerGroupId: pending.fromGroupId,
      devices: (await ctx.keyStore.listActiveDevices(owner.address)).length,
    },
  ];
}

/** The device, by its IMAP password; the same 403 for every failure. */
async function deviceOf(ctx: RotationContext, body: Record<string, unknown>) {
  const address = requireString(body, 'address', 254);
  const password = requireString(body, 'password', 1024);
  const user = await ctx.keyStore.getUser(address).catch(() => null);
  const device =
    user === null ? null : await authenticateDevice(ctx.keyStore, user.address, password);
  if (user === null || user.owner === null || device === null)
    throw new HttpError(403, 'address or device password not accepted');
  return { user: user as Owner, device };
}

async function pendingForDevice(ctx: RotationContext, raw: Buffer): Reply {
  const { user } = await deviceOf(ctx, parseJson(raw));
  const pending = await ctx.keyStore.pendingRotation(user.address);
  if (pending === null) throw new HttpError(404, 'no rotation is pending');
  return [
    200,
    {
      groupId: pending.group.groupId,
      groupCertificate: b64(pending.group.certificate),
      ownerCaCertificate: b64(user.owner.ownerCaCertificate),
    },
  ];
}

async function rekey(ctx: RotationContext, raw: Buffer): Reply {
  const body = parseJson(raw);
  const { user, device } = await deviceOf(ctx, body);
  try {
    await ctx.keyStore.putRekeyRequest(user.address, {
      id: device.id,
      groupId: requireString(body, 'groupId', 1024),
      sealedAlpha: requireString(body, 'sealedAlpha', 1024),
      mac: requireString(body, 'mac', 256),
      tau: scalarOf(body, 'tau'),
    });
  } catch (error) {
    if (error instanceof StaleStateError || error instanceof NotFoundError)
      throw new HttpError(409, 'no rotation to this group is pending for this device');
    throw error;
  }
  return [202, { requested: true, device: device.name }];
}
