/**
 * An enrolled owner's own account (owner-signed, see callers.ts): what the gateway
 * holds for it, its devices (add with certificate, recryption keys and credential
 * hash; revoke) and its published profile; docs/admin-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  accountCredentialSalt,
  DEVICE_CREDENTIAL_PARAMS,
  deviceCredentialUploadProblem,
  type Device,
} from '../keystore/index.js';
import { verifyProfile } from '../profiles/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { checkDeviceUpload } from './uploads.js';
import { formerGroupKeys } from './rotation.js';
import { userView } from './account-routes.js';
import { ownerOf } from './callers.js';
import type { AdminApiContext } from './api.js';

export function deviceView(device: Device) {
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

export async function showOwner(ctx: AdminApiContext, req: IncomingMessage, res: ServerResponse) {
  const user = ownerOf(req);
  sendJson(res, 200, {
    ...userView(user),
    groupId: user.owner.groupId,
    imap: ctx.imapSettings,
    deviceCredential: credentialView(user.address),
  });
}

export async function listDevices(ctx: AdminApiContext, req: IncomingMessage, res: ServerResponse) {
  const user = ownerOf(req);
  const devices = await ctx.keyStore.listDevices(user.address);
  sendJson(res, 200, { devices: devices.map(deviceView) });
}

export async function addDevice(
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

export async function revokeDevice(
  ctx: AdminApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  params: string[],
) {
  const user = ownerOf(req);
  const device = await ctx.keyStore.revokeDevice(user.address, params[0]!);
  sendJson(res, 200, { device: deviceView(device) });
}

export async function publishProfile(
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
