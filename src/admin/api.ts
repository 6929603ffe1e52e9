/**
 * The admin API's routes (docs/admin-api.md is the reference). Three kinds of caller:
 * - the operator, with the admin token from the gateway's data directory: accounts;
 * - an owner holding a one-time enrolment token: enrolment (owner CA + group certificate);
 * - an enrolled owner, signing each request with the owner key: devices and profile.
 * The gateway stores certificates, credential hashes and recryption keys; it never
 * receives a group secret or a device secret. This file is the route table and its
 * dispatch; the callers' checks are in callers.ts, the handlers in account-routes.ts,
 * owner-routes.ts, lists.ts, list-moderation.ts, pairing.ts and rotation.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { KeyStore } from '../keystore/index.js';
import { HttpError, readBody } from './http.js';
import { addUser, enrol, listUsers, newToken, removeUser } from './account-routes.js';
import { isOperatorHandler, operator, owner, ownerOf } from './callers.js';
import {
  addDevice,
  deviceView,
  listDevices,
  publishProfile,
  revokeDevice,
  showOwner,
} from './owner-routes.js';
import { listRoutes } from './lists.js';
import { moderationRoutes, type ListModeration } from './list-moderation.js';
import { pairingRoutes } from './pairing.js';
import { rotationRoutes } from './rotation.js';
import { patternLabel } from './metrics.js';
import { noteAuditTarget } from './audit.js';
import type { RateLimiter } from './rate-limit.js';
import type { Handler as RouteHandler } from './route-types.js';

export { ENROLMENT_TOKEN_TTL_MS } from './account-routes.js';

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
  /** The remote-join limit's buckets when shared between processes (list-remote.ts). */
  remoteJoinLimiter?: RateLimiter;
}

type Handler = RouteHandler<AdminApiContext>;

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
      audiences.includes(isOperatorHandler(route.handler) ? 'operator' : 'public'),
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
