/**
 * Device pairing routes (docs/cli.md "Pairing a device", docs/admin-api.md): a new
 * device makes its own key d and the blinded issue of docs/design.md §2 runs through
 * here without the gateway learning d, α or g.
 *
 *   owner CLI:  POST /v1/owner/pairing-invites → a sealed one-time invite (24 h)
 *   device:     POST /v1/pairing/owner {address, invite} → owner CA and group certificates
 *               POST /v1/pairing/requests {…, certificateRequest, sealedAlpha, tau, …}
 *                 the invite is used up; the request waits (bounded per user, expires)
 *   owner CLI:  GET /v1/owner/pairing-requests, compares the short code, then
 *               POST /v1/owner/pairing-requests/<id>/approve {beta, certificate}
 *                 rk = β·τ, stored only if rk·D = G and the certificate is for D
 *   device:     POST /v1/pairing/requests/<id>/status {address, pickup} → its certificate
 *
 * The gateway holds τ (wrapped) until the approve and β for the moment it computes rk;
 * α travels sealed to the owner's group key and only the owner's CLI opens it.
 * Unauthenticated routes answer the same 403 for a wrong, expired or used invite or one
 * for another address, and 404 for a request that is not there or not the caller's.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  deviceCredentialUploadProblem,
  LimitError,
  NotFoundError,
  type Device,
  type KeyStore,
} from '../keystore/index.js';
import {
  readDeviceRequest,
  certificatePublicPoint,
  gatewayUnblind,
  multiplyPoint,
  RecryptError,
  scalarFromBytes,
  scalarToBytes,
  type Scalar,
} from '../recrypt/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { open, seal } from './list-sealing.js';
import { checkDeviceUpload } from './uploads.js';
import { formerGroupKeysBlinded } from './rotation.js';
import { noteAuditActor } from './audit.js';
import type { Handler, Owner } from './route-types.js';

export const PAIRING_INVITE_TTL_MS = 24 * 3600 * 1000;
/** How long a request waits for the owner, and an approved one for the device's pickup. */
export const PAIRING_REQUEST_TTL_MS = 24 * 3600 * 1000;
/** Unexpired requests per user: enough for a household, too few to flood an owner. */
export const MAX_PENDING_PAIRINGS = 5;

interface PairingContext {
  keyStore: KeyStore;
  adminToken: string;
  clock: () => number;
  imapSettings: { host: string; port: number; starttlsPort: number };
}

export interface PairingRouteDeps<C extends PairingContext> {
  owner: (handler: Handler<C>) => Handler<C>;
  ownerOf: (req: IncomingMessage) => Owner;
  deviceView: (device: Device) => unknown;
}

export function pairingRoutes<C extends PairingContext>(
  deps: PairingRouteDeps<C>,
): Array<{ method: string; pattern: RegExp; handler: Handler<C> }> {
  const signed = (
    fn: (ctx: C, owner: Owner, params: string[], body: Buffer) => Promise<[number, unknown]>,
  ) =>
    deps.owner(async (ctx, req, res, params, body) => {
      const [status, value] = await fn(ctx, deps.ownerOf(req), params, body);
      sendJson(res, status, value);
    });
  const unsigned =
    (fn: (ctx: C, params: string[], body: Buffer) => Promise<[number, unknown]>): Handler<C> =>
    async (ctx, req, res, params, body) => {
      noteAuditActor(req, 'pairing-device');
      const [status, value] = await fn(ctx, params, body);
      sendJson(res, status, value);
    };
  const ID = '([0-9a-f]{16})';
  return [
    { method: 'POST', pattern: /^\/v1\/owner\/pairing-invites$/, handler: signed(createInvite) },
    { method: 'GET', pattern: /^\/v1\/owner\/pairing-requests$/, handler: signed(listRequests) },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/owner/pairing-requests/${ID}/approve$`),
      handler: signed((ctx, owner, params, body) => approve(ctx, owner, params, body, deps)),
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/owner/pairing-requests/${ID}$`),
      handler: signed(refuse),
    },
    // Unauthenticated: the device has no credential yet; the invite is its authority.
    { method: 'POST', pattern: /^\/v1\/pairing\/owner$/, handler: unsigned(ownerKeys) },
    { method: 'POST', pattern: /^\/v1\/pairing\/requests$/, handler: unsigned(request) },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/pairing/requests/${ID}/status$`),
      handler: unsigned((ctx, params, body) => status(ctx, params, body, deps)),
    },
  ];
}

// --- the invite ------------------------------------------------------------------------

interface SealedInvite {
  address: string;
  expires: number;
}

const INVITE_AAD = 'device-pairing-invite';
const inviteRefused = () => new HttpError(403, 'pairing invite not accepted');

async function createInvite(ctx: PairingContext, owner: Owner): Promise<[number, unknown]> {
  const expires = ctx.clock() + PAIRING_INVITE_TTL_MS;
  const plain: SealedInvite & { nonce: string } = {
    address: owner.address,
    expires,
    nonce: randomBytes(16).toString('hex'),
  };
  const invite = seal(ctx.adminToken, INVITE_AAD, Buffer.from(JSON.stringify(plain)));
  return [201, { invite, expires: new Date(expires).toISOString() }];
}

/** The invite's user, if it is ours, unexpired, unused and for `address`; 403 otherwise. */
async function checkInvite(ctx: PairingContext, address: string, invite: string): Promise<Owner> {
  let sealed: SealedInvite;
  try {
    sealed = JSON.parse(
      open(ctx.adminToken, INVITE_AAD, invite, 'invite').toString(),
    ) as SealedInvite;
  } catch {
    throw inviteRefused();
  }
  if (sealed.address.toLowerCase() !== address.toLowerCase() || sealed.expires <= ctx.clock())
    throw inviteRefused();
  const user = await ctx.keyStore.getUser(sealed.address);
  if (user === null || user.owner === null || user.created > sealed.expires - PAIRING_INVITE_TTL_MS)
    throw inviteRefused();
  return user as Owner;
}

/**
 * Invites are single-use: the request that uses one records its hash as a nonce for the
 * invite's lifetime. Fetching the owner's certificates (public anyway) does not use it.
 */
const inviteScope = (address: string) => `pairing-invite:${address}`;
const inviteHash = (invite: string) => createHash('sha256').update(invite).digest('hex');

// --- the device's side -----------------------------------------------------------------

async function ownerKeys(
  ctx: PairingContext,
  _p: string[],
  raw: Buffer,
): Promise<[number, unknown]> {
  const body = parseJson(raw);
  const owner = await checkInvite(
    ctx,
    requireString(body, 'address', 254),
    requireString(body, 'invite', 1024),
  );
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  return [
    200,
    {
      address: owner.address,
      ownerCaCertificate: b64(owner.owner.ownerCaCertificate),
      groupCertificate: b64(owner.owner.groupCertificate),
      groupId: owner.owner.groupId,
    },
  ];
}

function scalarOf(body: Record<string, unknown>, field: string): Scalar {
  const bytes = requireBase64(body, field, 64);
  try {
    return scalarFromBytes(bytes);
  } catch {
    throw new HttpError(400, `${field}: not a P-256 scalar`);
  }
}

async function request(ctx: PairingContext, _p: string[], raw: Buffer): Promise<[number, unknown]> {
  const body = parseJson(raw);
  const invite = requireString(body, 'invite', 1024);
  const owner = await checkInvite(ctx, requireString(body, 'address', 254), invite);
  const name = requireString(body, 'name', 64);
  const client = body.client ?? 'standard';
  if (client !== 'standard' && client !== 'outlook')
    throw new HttpError(400, "client: expected 'standard' or 'outlook'");
  const certificateRequest = requireBase64(body, 'certificateRequest', 8192);
  try {
    const csr = await readDeviceRequest(certificateRequest);
    if (csr.name !== name) throw new HttpError(400, 'certificateRequest: names another device');
  } catch (error) {
    if (error instanceof RecryptError) throw new HttpError(400, error.message);
    throw error;
  }
  if ((await ctx.keyStore.getDeviceByName(owner.address, name)) !== null)
    throw new HttpError(409, `a device named ${JSON.stringify(name)} already exists`);
  const groupId = requireString(body, 'groupId', 1024);
  if (groupId !== owner.owner.groupId)
    throw new HttpError(409, "groupId: not the owner's current group (fetch the keys again)");
  const credentialHash = requireString(body, 'credentialHash', 512);
  const problem = deviceCredentialUploadProblem(credentialHash, owner.address);
  if (problem !== null) throw new HttpError(400, `credentialHash: ${problem}`);
  const pickupHash = requireString(body, 'pickupHash', 64);
  if (!/^[0-9a-f]{64}$/.test(pickupHash))
    throw new HttpError(400, 'pickupHash: expected SHA-256 hex');
  const input = {
    ownerAddress: owner.address,
    name,
    client: client as 'standard' | 'outlook',
    certificateRequest,
    sealedAlpha: requireString(body, 'sealedAlpha', 1024),
    groupId,
    tau: scalarOf(body, 'tau'),
    credentialHash,
    pickupHash,
    // Opaque here: the owner's CLI checks the MAC with a key the gateway never sees.
    invite,
    tag: requireString(body, 'tag', 128),
    expires: ctx.clock() + PAIRING_REQUEST_TTL_MS,
  };
  // Checked before the invite is used up, so a full queue leaves the invite usable.
  if ((await ctx.keyStore.listPairingRequests(owner.address)).length >= MAX_PENDING_PAIRINGS)
    throw new HttpError(429, 'too many pairing requests waiting for this owner');
  if (
    !(await ctx.keyStore.useNonce(
      inviteScope(owner.address),
      inviteHash(invite),
      PAIRING_INVITE_TTL_MS,
    ))
  )
    throw inviteRefused();
  let stored;
  try {
    stored = await ctx.keyStore.addPairingRequest(input, MAX_PENDING_PAIRINGS);
  } catch (error) {
    if (error instanceof LimitError)
      throw new HttpError(429, 'too many pairing requests waiting for this owner');
    throw error;
  }
  return [201, { id: stored.id, expires: new Date(stored.expires).toISOString() }];
}

const notThere = () => new HttpError(404, 'no such pairing request');

async function status<C extends PairingContext>(
  ctx: C,
  params: string[],
  raw: Buffer,
  deps: PairingRouteDeps<C>,
): Promise<[number, unknown]> {
  const body = parseJson(raw);
  const address = requireString(body, 'address', 254);
  const pickup = requireString(body, 'pickup', 128);
  const found = await ctx.keyStore.getPairingRequest(address, params[0]!);
  const hash = createHash('sha256').update(pickup).digest('hex');
  if (found === null || found.pickupHash !== hash) throw notThere();
  if (found.approvedCertificate === null)
    return [200, { state: 'pending', expires: new Date(found.expires).toISOString() }];
  const device = (await ctx.keyStore.listActiveDevices(found.ownerAddress)).find((d) =>
    Buffer.from(d.certificate).equals(Buffer.from(found.approvedCertificate!)),
  );
  if (device === undefined) throw notThere();
  // Picked up: the request has served its purpose.
  await ctx.keyStore.removePairingRequest(found.ownerAddress, found.id);
  return [
    200,
    {
      state: 'approved',
      certificate: Buffer.from(found.approvedCertificate).toString('base64'),
      device: deps.deviceView(device),
      username: found.ownerAddress,
      imap: ctx.imapSettings,
    },
  ];
}

// --- the owner's side ------------------------------------------------------------------

/** Requests of the owner's current enrolment only: α of an earlier group key cannot be opened. */
async function currentRequests(ctx: PairingContext, owner: Owner) {
  return (await ctx.keyStore.listPairingRequests(owner.address)).filter(
    (r) => r.groupId === owner.owner.groupId && r.created >= owner.created,
  );
}

async function listRequests(ctx: PairingContext, owner: Owner): Promise<[number, unknown]> {
  const requests = (await currentRequests(ctx, owner)).filter(
    (r) => r.approvedCertificate === null,
  );
  return [
    200,
    {
      requests: requests.map((r) => ({
        id: r.id,
        name: r.name,
        client: r.client,
        certificateRequest: Buffer.from(r.certificateRequest).toString('base64'),
        sealedAlpha: r.sealedAlpha,
        invite: r.invite,
        tag: r.tag,
        created: new Date(r.created).toISOString(),
        expires: new Date(r.expires).toISOString(),
      })),
    },
  ];
}

async function approve<C extends PairingContext>(
  ctx: C,
  owner: Owner,
  params: string[],
  raw: Buffer,
  deps: PairingRouteDeps<C>,
): Promise<[number, unknown]> {
  const id = params[0]!;
  const found = (await currentRequests(ctx, owner)).find((r) => r.id === id);
  if (found === undefined || found.tau === null || found.approvedCertificate !== null)
    throw new HttpError(
      404,
      'no pending pairing request with that id (approved, refused or expired)',
    );
  const body = parseJson(raw);
  const beta = scalarOf(body, 'beta');
  const certificate = requireBase64(body, 'certificate');
  const { point } = await readDeviceRequest(found.certificateRequest);
  let certificatePoint: Uint8Array;
  try {
    certificatePoint = certificatePublicPoint(certificate);
  } catch {
    throw new HttpError(400, 'certificate: not a P-256 certificate');
  }
  if (!Buffer.from(certificatePoint).equals(Buffer.from(point)))
    throw new HttpError(400, 'certificate: not for the key the device asked for');
  const rk = gatewayUnblind(beta, found.tau);
  const groupPoint = certificatePublicPoint(owner.owner.groupCertificate);
  if (!Buffer.from(multiplyPoint(point, rk)).equals(Buffer.from(groupPoint)))
    throw new HttpError(
      400,
      "beta: the resulting key does not map the device's key to the group key",
    );
  const upload = checkDeviceUpload(owner.address, owner.owner, certificate, scalarToBytes(rk));
  // Keys for the groups the mailbox had before a rotation: old mail reads too.
  const former = await formerGroupKeysBlinded(ctx.keyStore, owner, body, certificate, found.tau);
  try {
    await ctx.keyStore.approvePairingRequest(owner.address, id, certificate);
  } catch (error) {
    if (error instanceof NotFoundError)
      throw new HttpError(409, 'pairing request already approved');
    throw error;
  }
  let device: Device;
  try {
    device = await ctx.keyStore.addDevice({
      ownerAddress: owner.address,
      name: found.name,
      certificate: upload.certificate,
      deviceId: upload.deviceId,
      client: found.client,
      credentialHash: found.credentialHash,
      keys: new Map([...former, [owner.owner.groupId, upload.rk]]),
    });
  } catch (error) {
    // No device, so no pickup either: the device has to ask again.
    await ctx.keyStore.removePairingRequest(owner.address, id);
    throw error;
  }
  return [201, { device: deps.deviceView(device) }];
}

async function refuse(
  ctx: PairingContext,
  owner: Owner,
  params: string[],
): Promise<[number, unknown]> {
  if (!(await ctx.keyStore.removePairingRequest(owner.address, params[0]!))) throw notThere();
  return [204, null];
}
