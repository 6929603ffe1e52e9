/**
 * The admin API's routes (docs/admin-api.md is the reference). Three kinds of caller:
 * - the operator, with the admin token from the gateway's data directory: accounts;
 * - an owner holding a one-time enrolment token: enrolment (owner CA + group certificate);
 * - an enrolled owner, signing each request with the owner key: devices and profile.
 * The gateway stores certificates, credential hashes and recryption keys; it never
 * receives a group secret or a device secret.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  accountCredentialSalt,
  DEVICE_CREDENTIAL_PARAMS,
  deviceCredentialUploadProblem,
  type Device,
  type KeyStore,
  type User,
} from '../keystore/index.js';
import { isValidAddress, verifyProfile } from '../profiles/index.js';
import { HttpError, parseJson, readBody, requireBase64, requireString, sendJson } from './http.js';
import {
  RequestSignatureError,
  SIGNATURE_HEADER,
  parseSignatureHeader,
  verifyRequestSignature,
} from './request-signing.js';
import { checkDeviceUpload, checkOwnerUpload } from './uploads.js';
import { listRoutes } from './lists.js';
import { moderationRoutes, type ListModeration } from './list-moderation.js';
import { pairingRoutes } from './pairing.js';
import { formerGroupKeys, rotationRoutes } from './rotation.js';
import { patternLabel } from './metrics.js';
import { noteAuditActor, noteAuditTarget } from './audit.js';
import type { Handler as RouteHandler } from './route-types.js';

export const ENROLMENT_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;
const NONCE_TTL_MS = 15 * 60 * 1000;

export interface AdminApiContext {
  keyStore: KeyStore;
  adminToken: string;
  clock: () => number;
  /** What owners' CLIs print as IMAP settings for a new device. */
  imapSettings: { host: string; port: number; starttlsPort: number };
  /** Held posts of moderated lists (docs/lists.md); the routes answer 503 without it. */
  moderation?: ListModeration;
  /** Where operator actions that revoke devices (an enrolment reset) are recorded. */
  logger?: Logger;
}

type Handler = RouteHandler<AdminApiContext>;

/** Handlers behind the admin token: served on the operator listener only (docs/admin-api.md). */
const operatorHandlers = new WeakSet<Handler>();

/** Which routes a listener serves: the public one never the operator's, and vice versa. */
export type Audience = 'public' | 'operator';

const routes: Array<{ method: string; pattern: RegExp; handler: Handler }> = [
  { method: 'POST', pattern: /^\/v1\/users$/, handler: operator(addUser) },
  { method: 'GET', pattern: /^\/v1\/users$/, handler: operator(listUsers) },
  { method: 'DELETE', pattern: /^\/v1\/users\/([^/]+)$/, handler: operator(removeUser) },
  { method: 'POST', pattern: /^\/v1\/users\/([^/]+)\/token$/, handler: operator(newToken) },
  { method: 'POST', pattern: /^\/v1\/enrol$/, handler: enrol },
  { method: 'GET', pattern: /^\/v1\/owner$/, handler: owner(showOwner) },
  { method: 'GET', pattern: /^\/v1\/owner\/devices$/, handler: owner(listDevices) },
  { method: 'POST', pattern: /^\/v1\/owner\/devices$/, handler: owner(addDevice) },
  {
    method: 'POST',
    pattern: /^\/v1\/owner\/devices\/([0-9a-f]{1,64})\/revoke$/,
    handler: owner(revokeDevice),
  },
  { method: 'PUT', pattern: /^\/v1\/owner\/profile$/, handler: owner(publishProfile) },
  ...listRoutes<AdminApiContext>({ owner, ownerOf }),
  ...moderationRoutes<AdminApiContext>({ owner, ownerOf }),
  ...pairingRoutes<AdminApiContext>({ owner, ownerOf, deviceView }),
  ...rotationRoutes<AdminApiContext>({ owner, ownerOf }),
];

/** The pattern of the route a `/v1/…` path matches (for metrics labels), or undefined. */
export function adminRouteOf(path: string): string | undefined {
  const route = routes.find((candidate) => candidate.pattern.test(path));
  return route === undefined ? undefined : patternLabel(route.pattern);
}

/**
 * Handles `/v1/…`; returns false for any other path so the server can try other routes.
 * A route of another audience is answered like an unknown one (404), so the public
 * listener does not even advertise that operator routes exist.
 */
export async function handleAdminRequest(
  ctx: AdminApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  audiences: readonly Audience[],
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (!path.startsWith('/v1/')) return false;
  const candidates = routes.filter(
    (route) =>
      route.pattern.test(path) &&
      audiences.includes(operatorHandlers.has(route.handler) ? 'operator' : 'public'),
  );
  if (candidates.length === 0) throw new HttpError(404, 'no such endpoint');
  const route = candidates.find((candidate) => candidate.method === req.method);
  if (route === undefined) {
    res.setHeader('allow', candidates.map((c) => c.method).join(', '));
    throw new HttpError(405, 'method not allowed');
  }
  const params = (route.pattern.exec(path) ?? []).slice(1).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      throw new HttpError(400, 'malformed path');
    }
  });
  const body = await readBody(req);
  noteAuditTarget(req, params, body);
  await route.handler(ctx, req, res, params, body);
  return true;
}

// --- callers -------------------------------------------------------------------------

function operator(handler: Handler): Handler {
  const checked: Handler = async (ctx, req, res, params, body) => {
    const header = req.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    // Compare digests so that the comparison is constant-time whatever the lengths.
    const digest = (text: string) => createHash('sha256').update(text).digest();
    if (!timingSafeEqual(digest(presented), digest(ctx.adminToken)) || presented.length === 0) {
      throw new HttpError(401, 'admin token not accepted');
    }
    noteAuditActor(req, 'operator');
    await handler(ctx, req, res, params, body);
  };
  operatorHandlers.add(checked);
  return checked;
}

/** The enrolled owner whose key signed this request; set for owner handlers. */
const signedBy = new WeakMap<IncomingMessage, User>();

function owner(handler: Handler): Handler {
  return async (ctx, req, res, params, body) => {
    const header = parseSignatureHeader(req.headers[SIGNATURE_HEADER] as string | undefined);
    const user = await ctx.keyStore.getUser(header.address);
    if (user === null || user.owner === null) {
      throw new RequestSignatureError('unknown-owner', 'no enrolled owner with that address');
    }
    verifyRequestSignature(
      header,
      { method: req.method ?? 'GET', path: req.url ?? '/', body },
      user.owner.ownerKeySpki,
      ctx.clock(),
    );
    if (!(await ctx.keyStore.useNonce(`owner:${user.address}`, header.nonce, NONCE_TTL_MS))) {
      throw new RequestSignatureError('replayed', 'nonce already used');
    }
    signedBy.set(req, user);
    noteAuditActor(req, `owner:${user.address}`);
    await handler(ctx, req, res, params, body);
  };
}

function ownerOf(req: IncomingMessage): User & { owner: NonNullable<User['owner']> } {
  const user = signedBy.get(req);
  if (user === undefined || user.owner === null)
    throw new Error('owner handler without a signed owner');
  return user as User & { owner: NonNullable<User['owner']> };
}

// --- operator ------------------------------------------------------------------------

function userView(user: User, devices?: Device[]) {
  return {
    address: user.address,
    name: user.displayName,
    enrolment: user.enrolment,
    created: new Date(user.created).toISOString(),
    ...(devices ? { activeDevices: devices.filter((d) => d.revoked === null).length } : {}),
  };
}

async function addUser(
  ctx: AdminApiContext,
  _req: IncomingMessage,
  res: ServerResponse,
  _p: string[],
  raw: Buffer,
) {
  const body = parseJson(raw);
  const address = requireString(body, 'address', 254);
  // The key store accepts any SMTPUTF8 mailbox, but an account must be able to enrol: its
  // address goes into certificates (rfc822Name is ASCII) and profile URLs, so refuse here
  // what the owner's certificates could never name.
  if (!isValidAddress(address)) {
    throw new HttpError(
      400,
      'address: malformed (expected an ASCII local@domain with a dot-atom local part)',
    );
  }
  const name = body.name === undefined ? undefined : requireString(body, 'name', 128);
  const user = await ctx.keyStore.addUser({
    address,
    ...(name !== undefined ? { displayName: name } : {}),
  });
  const token = await ctx.keyStore.createEnrolmentToken(user.address, ENROLMENT_TOKEN_TTL_MS);
  sendJson(res, 201, {
    ...userView(user),
    enrolmentToken: token,
    tokenExpires: new Date(ctx.clock() + ENROLMENT_TOKEN_TTL_MS).toISOString(),
  });
}

/**
 * A new enrolment token. An enrolled account gets one only with `{"reset": true}`: the
 * operator's explicit reset revokes every device and makes the account pending again,
 * so that a token can never silently hand an enrolled account to someone else.
 */
async function newToken(
  ctx: AdminApiContext,
  _req: IncomingMessage,
  res: ServerResponse,
  params: string[],
  raw: Buffer,
) {
  const body = raw.length === 0 ? {} : parseJson(raw);
  if (body.reset !== undefined && typeof body.reset !== 'boolean') {
    throw new HttpError(400, 'reset: expected true or false');
  }
  const reset = body.reset === true;
  const user = await ctx.keyStore.getUser(params[0]!);
  if (user === null) throw new HttpError(404, 'user not found');
  if (user.enrolment === 'enrolled' && !reset) {
    throw new HttpError(
      409,
      'account already enrolled: a new token needs an enrolment reset, which revokes every device',
    );
  }
  let revoked: Device[] = [];
  if (reset) {
    revoked = await ctx.keyStore.resetEnrolment(user.address);
    ctx.logger?.warn(
      { address: user.address, revokedDevices: revoked.map((device) => device.id) },
      'enrolment reset by the operator: every device revoked',
    );
  }
  const token = await ctx.keyStore.createEnrolmentToken(user.address, ENROLMENT_TOKEN_TTL_MS);
  sendJson(res, 201, {
    address: user.address,
    ...(reset ? { reset: true, revokedDevices: revoked.length } : {}),
    enrolmentToken: token,
    tokenExpires: new Date(ctx.clock() + ENROLMENT_TOKEN_TTL_MS).toISOString(),
  });
}

async function listUsers(ctx: AdminApiContext, _req: IncomingMessage, res: ServerResponse) {
  const users = await ctx.keyStore.listUsers();
  const views = [];
  for (const user of users)
    views.push(userView(user, await ctx.keyStore.listDevices(user.address)));
  sendJson(res, 200, { users: views });
}

async function removeUser(
  ctx: AdminApiContext,
  _req: IncomingMessage,
  res: ServerResponse,
  params: string[],
) {
  await ctx.keyStore.removeUser(params[0]!);
  sendJson(res, 204, null);
}

// --- enrolment -----------------------------------------------------------------------

async function enrol(
  ctx: AdminApiContext,
  _req: IncomingMessage,
  res: ServerResponse,
  _p: string[],
  raw: Buffer,
) {
  const body = parseJson(raw);
  const address = requireString(body, 'address', 254);
  const token = requireString(body, 'token', 256);
  const upload = checkOwnerUpload(
    address,
    requireBase64(body, 'ownerCaCertificate'),
    requireBase64(body, 'groupCertificate'),
  );
  const user = await ctx.keyStore.enrol(address, token, upload);
  noteAuditActor(_req, `enrolment:${user.address}`);
  sendJson(res, 200, { ...userView(user), groupId: upload.groupId, imap: ctx.imapSettings });
}

// --- owner ---------------------------------------------------------------------------

function deviceView(device: Device) {
  return {
    id: device.id,
    name: device.name,
    client: device.client,
    created: new Date(device.created).toISOString(),
    lastSeen: device.lastSeen === null ? null : new Date(device.lastSeen).toISOString(),
    revoked: device.revoked === null ? null : new Date(device.revoked).toISOString(),
  };
}

/** The only device credential hashes the gateway accepts for `address` (credentials.ts). */
function credentialView(address: string) {
  return {
    scheme: 'scrypt',
    ...DEVICE_CREDENTIAL_PARAMS,
    salt: accountCredentialSalt(address).toString('base64url'),
  };
}

async function showOwner(ctx: AdminApiContext, req: IncomingMessage, res: ServerResponse) {
  const user = ownerOf(req);
  sendJson(res, 200, {
    ...userView(user),
    groupId: user.owner.groupId,
    imap: ctx.imapSettings,
    deviceCredential: credentialView(user.address),
  });
}

async function listDevices(ctx: AdminApiContext, req: IncomingMessage, res: ServerResponse) {
  const user = ownerOf(req);
  const devices = await ctx.keyStore.listDevices(user.address);
  sendJson(res, 200, { devices: devices.map(deviceView) });
}

async function addDevice(
  ctx: AdminApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  _p: string[],
  raw: Buffer,
) {
  const user = ownerOf(req);
  const body = parseJson(raw);
  const name = requireString(body, 'name', 64);
  const client = body.client ?? 'standard';
  if (client !== 'standard' && client !== 'outlook') {
    throw new HttpError(400, "client: expected 'standard' or 'outlook'");
  }
  const credentialHash = requireString(body, 'credentialHash', 512);
  const problem = deviceCredentialUploadProblem(credentialHash, user.address);
  if (problem !== null) throw new HttpError(400, `credentialHash: ${problem}`);
  const upload = checkDeviceUpload(
    user.address,
    user.owner,
    requireBase64(body, 'certificate'),
    requireBase64(body, 'rk', 64),
  );
  const device = await ctx.keyStore.addDevice({
    ownerAddress: user.address,
    name,
    certificate: upload.certificate,
    deviceId: upload.deviceId,
    client,
    credentialHash,
    keys: new Map([
      ...(await formerGroupKeys(ctx.keyStore, user, body, upload.certificate)),
      [user.owner.groupId, upload.rk],
    ]),
  });
  sendJson(res, 201, { device: deviceView(device), imap: ctx.imapSettings });
}

async function revokeDevice(
  ctx: AdminApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  params: string[],
) {
  const user = ownerOf(req);
  const device = await ctx.keyStore.revokeDevice(user.address, params[0]!);
  sendJson(res, 200, { device: deviceView(device) });
}

async function publishProfile(
  ctx: AdminApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  _p: string[],
  raw: Buffer,
) {
  const user = ownerOf(req);
  const body = parseJson(raw);
  const document = requireString(body, 'profile', 64 * 1024);
  let verified;
  try {
    verified = verifyProfile(document, {
      expectedAddress: user.address,
      now: new Date(ctx.clock()),
    });
  } catch (error) {
    throw new HttpError(400, `profile: ${(error as Error).message}`);
  }
  if (!Buffer.from(verified.ownerSpki).equals(Buffer.from(user.owner.ownerKeySpki))) {
    throw new HttpError(400, 'profile: not signed by the enrolled owner key');
  }
  if (!Buffer.from(verified.groupCertificate).equals(Buffer.from(user.owner.groupCertificate))) {
    throw new HttpError(400, 'profile: its key is not the enrolled group certificate');
  }
  await ctx.keyStore.putProfile(user.address, document);
  sendJson(res, 200, { published: true });
}
