/**
 * Mailbox key rotation (full mode's routes: rotation-full.ts). Fast mode (docs/design.md §6, docs/threat-model.md "Rotating a
 * mailbox's group key"): the owner's CLI makes a new group g′ and its certificate, signs
 * the profile for it and sends δ = g′·g⁻¹ once.
 *
 *   owner CLI:  POST /v1/owner/rotation {mode: "fast", expectedGroupId, groupCertificate,
 *               delta, profile} → the rotated account
 *
 * The gateway checks, before anything is stored: the group it replaces is still the
 * current one (else 409), the certificate is issued by the owner CA for the address with
 * a RecipientId of the current one's length, the profile is signed by the owner key and
 * names the new certificate, and δ·G = G′ (a tampered δ: 400). Then, for every active
 * device, rk′ = δ·rk = g′·d⁻¹ — and the key store switches group, profile and every
 * device's key in one change (keystore/group-rotation.ts). δ is not kept.
 */
import type { IncomingMessage } from 'node:http';
import { StaleStateError, type KeyStore } from '../keystore/index.js';
import { verifyProfile } from '../profiles/index.js';
import {
  certificatePublicPoint,
  gatewayUnblind,
  multiplyPoint,
  multiplyScalars,
  scalarFromBytes,
  scalarToBytes,
  type Scalar,
} from '../recrypt/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { checkDeviceUpload, checkOwnerUpload } from './uploads.js';
import { fullRotationRoutes, startFull } from './rotation-full.js';
import type { Handler, Owner } from './route-types.js';

interface RotationContext {
  keyStore: KeyStore;
  clock: () => number;
}

export interface RotationRouteDeps<C extends RotationContext> {
  owner: (handler: Handler<C>) => Handler<C>;
  ownerOf: (req: IncomingMessage) => Owner;
}

export function rotationRoutes<C extends RotationContext>(
  deps: RotationRouteDeps<C>,
): Array<{ method: string; pattern: RegExp; handler: Handler<C> }> {
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/owner\/rotation$/,
      handler: deps.owner(async (ctx, req, res, _params, raw) => {
        const body = parseJson(raw);
        const owner = deps.ownerOf(req);
        if (body.mode === 'full') sendJson(res, 202, await startFull(ctx, owner, body));
        else sendJson(res, 200, await rotateFast(ctx, owner, body));
      }),
    },
    ...fullRotationRoutes(deps),
  ];
}

function scalarField(body: Record<string, unknown>, field: string): Scalar {
  const bytes = requireBase64(body, field, 64);
  try {
    return scalarFromBytes(bytes);
  } catch {
    throw new HttpError(400, `${field}: not a P-256 scalar`);
  }
}

/** The new group certificate and its profile, checked as at enrolment and publishing. */
export function checkNewGroup(
  owner: Owner,
  body: Record<string, unknown>,
  now: number,
): { groupId: string; certificate: Uint8Array; profile: string } {
  const expected = requireString(body, 'expectedGroupId', 1024);
  if (expected !== owner.owner.groupId)
    throw new StaleStateError('the mailbox was rotated meanwhile (stale group id)');
  const certificate = requireBase64(body, 'groupCertificate');
  const upload = checkOwnerUpload(owner.address, owner.owner.ownerCaCertificate, certificate);
  if (upload.groupId.length !== owner.owner.groupId.length)
    throw new HttpError(400, 'groupCertificate: its issuer and serial differ in length');
  if (upload.groupId === owner.owner.groupId)
    throw new HttpError(400, 'groupCertificate: it is the current group');
  const profile = requireString(body, 'profile', 64 * 1024);
  let verified;
  try {
    verified = verifyProfile(profile, { expectedAddress: owner.address, now: new Date(now) });
  } catch (error) {
    throw new HttpError(400, `profile: ${(error as Error).message}`);
  }
  if (!Buffer.from(verified.ownerSpki).equals(Buffer.from(owner.owner.ownerKeySpki)))
    throw new HttpError(400, 'profile: not signed by the enrolled owner key');
  if (!Buffer.from(verified.groupCertificate).equals(Buffer.from(certificate)))
    throw new HttpError(400, 'profile: its key is not the new group certificate');
  return { groupId: upload.groupId, certificate, profile };
}

async function rotateFast(
  ctx: RotationContext,
  owner: Owner,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  if (body.mode !== 'fast') throw new HttpError(400, "mode: expected 'fast' or 'full'");
  const group = checkNewGroup(owner, body, ctx.clock());
  const delta = scalarField(body, 'delta');
  const mapsToNew = Buffer.from(
    multiplyPoint(certificatePublicPoint(owner.owner.groupCertificate), delta),
  ).equals(Buffer.from(certificatePublicPoint(group.certificate)));
  if (!mapsToNew)
    throw new HttpError(400, 'delta: does not map the current group key to the new one');
  const keys = new Map<string, Scalar>();
  for (const device of await ctx.keyStore.listActiveDevices(owner.address)) {
    const rk = (await ctx.keyStore.keysForDevice(owner.address, device.id)).get(
      owner.owner.groupId,
    );
    // Revoked between the two reads, or never keyed: the store refuses what it cannot apply.
    if (rk !== undefined) keys.set(device.id, multiplyScalars(delta, rk));
  }
  const user = await ctx.keyStore.rotateGroup(owner.address, {
    fromGroupId: owner.owner.groupId,
    group: { groupId: group.groupId, certificate: group.certificate },
    profile: group.profile,
    keys,
  });
  return {
    address: user.address,
    mode: 'fast',
    groupId: user.owner!.groupId,
    formerGroupId: owner.owner.groupId,
    devices: keys.size,
  };
}

/**
 * A new device's keys for the mailbox's former groups (`formerKeys: [{groupId, rk}]` in
 * `POST /v1/owner/devices`), so that it reads mail from before a rotation too. Each rk
 * is checked against that former group's certificate (rk·D = G_i), as the current one is.
 */
export async function formerGroupKeys(
  keyStore: KeyStore,
  owner: Owner,
  body: Record<string, unknown>,
  certificate: Uint8Array,
): Promise<Map<string, Scalar>> {
  const keys = new Map<string, Scalar>();
  if (body.formerKeys === undefined) return keys;
  if (!Array.isArray(body.formerKeys) || body.formerKeys.length > 63)
    throw new HttpError(400, 'formerKeys: expected an array of at most 63 {groupId, rk}');
  const former = new Map(
    (await keyStore.formerGroups(owner.address)).map((g) => [g.groupId, g.certificate]),
  );
  for (const entry of body.formerKeys as unknown[]) {
    if (typeof entry !== 'object' || entry === null)
      throw new HttpError(400, 'formerKeys: expected {groupId, rk} objects');
    const item = entry as Record<string, unknown>;
    const groupId = requireString(item, 'groupId', 1024);
    const groupCertificate = former.get(groupId);
    if (groupCertificate === undefined)
      throw new HttpError(400, 'formerKeys: not a former group of this mailbox');
    const checked = checkDeviceUpload(
      owner.address,
      { ...owner.owner, groupCertificate, groupId },
      certificate,
      requireBase64(item, 'rk', 64),
    );
    keys.set(groupId, checked.rk);
  }
  return keys;
}

/**
 * The same for a paired device (`formerBetas: [{groupId, beta}]` in the pairing approve):
 * the owner answers β_i = g_i·α for each former group and the gateway unblinds
 * rk_i = β_i·τ, each checked against that group's certificate.
 */
export async function formerGroupKeysBlinded(
  keyStore: KeyStore,
  owner: Owner,
  body: Record<string, unknown>,
  certificate: Uint8Array,
  tau: Scalar,
): Promise<Map<string, Scalar>> {
  if (body.formerBetas === undefined) return new Map();
  if (!Array.isArray(body.formerBetas) || body.formerBetas.length > 63)
    throw new HttpError(400, 'formerBetas: expected an array of at most 63 {groupId, beta}');
  const formerKeys = (body.formerBetas as unknown[]).map((entry) => {
    if (typeof entry !== 'object' || entry === null)
      throw new HttpError(400, 'formerBetas: expected {groupId, beta} objects');
    const item = entry as Record<string, unknown>;
    const rk = gatewayUnblind(scalarField(item, 'beta'), tau);
    return {
      groupId: requireString(item, 'groupId', 1024),
      rk: Buffer.from(scalarToBytes(rk)).toString('base64'),
    };
  });
  return formerGroupKeys(keyStore, owner, { formerKeys }, certificate);
}
