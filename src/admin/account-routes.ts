/**
 * The operator's account routes (behind the admin token) and enrolment (an owner with
 * a one-time token uploads the owner CA and group certificate); docs/admin-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Device, User } from '../keystore/index.js';
import { isValidAddress } from '../profiles/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { checkOwnerUpload } from './uploads.js';
import { noteAuditActor } from './audit.js';
import type { AdminApiContext } from './api.js';

export const ENROLMENT_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;

export function userView(user: User, devices?: Device[]) {
  return {
    address: user.address,
    name: user.displayName,
    enrolment: user.enrolment,
    created: new Date(user.created).toISOString(),
    ...(devices ? { activeDevices: devices.filter((d) => d.revoked === null).length } : {}),
  };
}

export async function addUser(
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
export async function newToken(
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

export async function listUsers(ctx: AdminApiContext, _req: IncomingMessage, res: ServerResponse) {
  const users = await ctx.keyStore.listUsers();
  const views = [];
  for (const user of users)
    views.push(userView(user, await ctx.keyStore.listDevices(user.address)));
  sendJson(res, 200, { users: views });
}

export async function removeUser(
  ctx: AdminApiContext,
  _req: IncomingMessage,
  res: ServerResponse,
  params: string[],
) {
  await ctx.keyStore.removeUser(params[0]!);
  sendJson(res, 204, null);
}

// --- enrolment -----------------------------------------------------------------------

export async function enrol(
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
