/**
 * Who may call an admin route (docs/admin-api.md): the operator with the admin token,
 * or an enrolled owner signing the request with the owner key (request-signing.ts),
 * each nonce once. api.ts wraps each route's handler in one of these.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { KeyStore, User } from '../keystore/index.js';
import { HttpError } from './http.js';
import {
  RequestSignatureError,
  SIGNATURE_HEADER,
  parseSignatureHeader,
  verifyRequestSignature,
} from './request-signing.js';
import { noteAuditActor } from './audit.js';
import type { Handler, Owner } from './route-types.js';

const NONCE_TTL_MS = 15 * 60 * 1000;

/** Handlers behind the admin token: served on the operator listener only (docs/admin-api.md). */
const operatorHandlers = new WeakSet<Handler<never>>();

/** Whether `handler` was made by `operator()`, i.e. is served on the operator listener. */
export function isOperatorHandler(handler: Handler<never>): boolean {
  return operatorHandlers.has(handler);
}

/** Admits a request carrying the admin token (compared in constant time). */
export function operator<C extends { adminToken: string }>(handler: Handler<C>): Handler<C> {
  const checked: Handler<C> = async (ctx, req, res, params, body) => {
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
  operatorHandlers.add(checked as Handler<never>);
  return checked;
}

/** The enrolled owner whose key signed this request; set for owner handlers. */
const signedBy = new WeakMap<IncomingMessage, User>();

/** Admits a request signed by an enrolled owner's key, each nonce once (NONCE_TTL_MS). */
export function owner<C extends { keyStore: KeyStore; clock: () => number }>(
  handler: Handler<C>,
): Handler<C> {
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

/** The owner whose signature `owner()` checked for this request. */
export function ownerOf(req: IncomingMessage): Owner {
  const user = signedBy.get(req);
  if (user === undefined || user.owner === null)
    throw new Error('owner handler without a signed owner');
  return user as Owner;
}
