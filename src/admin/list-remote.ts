/**
 * Remote list members (docs/lists.md "Remote members"): people who are not users
 * of this gateway and join a list with their own S/MIME P-256 certificate. This file
 * owns the one unauthenticated list route, `POST /v1/list-joins/remote` (authorised by
 * the owner's single-use invite and a proof of possession of the certificate's key), the
 * checks on such a certificate, and the list owner's admit of a remote join.
 *
 * The blinded issue is the local one with the certificate's secret d in g_member's
 * place: the joiner sends τ = t⁻¹ here (sealed back to them, bound to the certificate)
 * and seals α = t·d⁻¹ to the list key; the owner sends β = g_list·α; rk = β·τ =
 * g_list·d⁻¹ is stored only if rk·D = G_list.
 *
 * No chain validation: the list owner invited that address, and what the gateway needs
 * is a key the joiner holds (the signature) for that address; whoever issued it, the
 * list owner's invite is the authorisation.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPublicKey } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyStore, MailingList } from '../keystore/index.js';
import {
  certificatePublicPoint,
  gatewayUnblind,
  multiplyPoint,
  recipientIdOf,
  scalarFromBytes,
  type Scalar,
} from '../recrypt/index.js';
import { HttpError, parseJson, requireBase64, requireString, sendJson } from './http.js';
import { INVITE_TTL_MS, JOIN_TTL_MS, openRemoteInvite, openTau, sealTau } from './list-sealing.js';
import { remoteJoinMessage, verifyRemoteJoin } from './remote-join-proof.js';
import { noteAuditActor } from './audit.js';
import { createRateLimiter, type RateLimiter, type RateLimitSettings } from './rate-limit.js';

/** base64 of a certificate: 16 KiB of DER is far more than any S/MIME certificate needs. */
export const MAX_CERTIFICATE_BASE64 = 22_000;
/** Remote-join requests per client address per minute (the route needs no account). */
export const REMOTE_JOINS_PER_MINUTE = 30;
/** As a token bucket (rate-limit.ts): that many at once, then one every 60/that seconds. */
export const REMOTE_JOIN_LIMIT: RateLimitSettings = {
  perMinute: REMOTE_JOINS_PER_MINUTE,
  burst: REMOTE_JOINS_PER_MINUTE,
};

interface RemoteContext {
  keyStore: KeyStore;
  adminToken: string;
  clock: () => number;
  /**
   * The `REMOTE_JOIN_LIMIT` buckets every process of the gateway takes from (Redis, or the
   * primary over IPC: src/gateway/shared-state.ts); absent: this process's own.
   */
  remoteJoinLimiter?: RateLimiter;
}

export interface RemoteCertificate {
  /** IssuerAndSerialNumber hex: what the member's list keys are bound to. */
  groupId: string;
  /** D, the certificate's public point. */
  point: Uint8Array;
  spki: Buffer;
  /** SHA-256 of the DER, hex: what the sealed τ is bound to. */
  sha256: string;
}

const certificateError = (why: string) => new HttpError(400, `certificate: ${why}`);

/** The checks of docs/lists.md "Remote members"; a 400 naming the failed one. */
export function checkRemoteCertificate(
  der: Uint8Array,
  address: string,
  now: number,
): RemoteCertificate {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch {
    throw certificateError('not a DER X.509 certificate');
  }
  const spki = Buffer.from(cert.publicKey.rawData);
  let point: Uint8Array;
  try {
    const details = createPublicKey({
      key: spki,
      format: 'der',
      type: 'spki',
    }).asymmetricKeyDetails;
    if (details?.namedCurve !== 'prime256v1') throw new Error('not P-256');
    point = certificatePublicPoint(der);
  } catch {
    throw certificateError('its key must be an EC key on P-256');
  }
  if (now < cert.notBefore.getTime()) throw certificateError('not valid yet');
  if (now > cert.notAfter.getTime()) throw certificateError('expired');
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  if (usage !== null && (usage.usages & x509.KeyUsageFlags.keyAgreement) === 0)
    throw certificateError('its keyUsage does not allow keyAgreement');
  const wanted = address.toLowerCase();
  const sanEmails =
    cert
      .getExtension(x509.SubjectAlternativeNameExtension)
      ?.names.items.filter((n) => n.type === 'email')
      .map((n) => n.value) ?? [];
  const subjectEmails = cert.subjectName.getField('1.2.840.113549.1.9.1');
  if (![...sanEmails, ...subjectEmails].some((e) => e.toLowerCase() === wanted))
    throw certificateError(`names neither in subjectAltName nor in its subject ${address}`);
  return {
    groupId: Buffer.from(recipientIdOf(der)).toString('hex'),
    point,
    spki,
    sha256: createHash('sha256').update(der).digest('hex'),
  };
}

function scalarOf(body: Record<string, unknown>, field: string): Scalar {
  const bytes = requireBase64(body, field, 64);
  try {
    return scalarFromBytes(bytes);
  } catch {
    throw new HttpError(400, `${field}: not a P-256 scalar`);
  }
}

async function listOrNotFound(ctx: RemoteContext, address: string): Promise<MailingList> {
  const list = await ctx.keyStore.getList(address);
  if (list === null) throw new HttpError(404, 'list not found');
  return list;
}

async function refuseLocalUser(ctx: RemoteContext, member: string): Promise<void> {
  if ((await ctx.keyStore.getUser(member)) !== null)
    throw new HttpError(
      409,
      `member: ${member} is a user of this gateway; invite them without --remote`,
    );
}

/** This process's buckets, one set per admin server, when none are shared. */
const localLimiters = new WeakMap<object, RateLimiter>();

async function rateLimit(
  ctx: RemoteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let limiter = ctx.remoteJoinLimiter ?? localLimiters.get(ctx);
  if (limiter === undefined) {
    limiter = createRateLimiter(REMOTE_JOIN_LIMIT, ctx.clock);
    localLimiters.set(ctx, limiter);
  }
  const verdict = await limiter.take(req.socket.remoteAddress ?? 'unknown');
  if (verdict.allowed) return;
  res.setHeader('retry-after', String(verdict.retryAfterSeconds));
  throw new HttpError(429, 'too many remote joins from this address; wait a minute');
}

/**
 * `POST /v1/list-joins/remote` {invite, certificate, tau, signature}: checks everything
 * before it uses the invite up, so a refused attempt stores nothing and leaves the
 * invite usable; answers with the list group certificate and τ sealed for the admit.
 */
export async function remoteJoin(
  ctx: RemoteContext,
  req: IncomingMessage,
  res: ServerResponse,
  _params: string[],
  raw: Buffer,
): Promise<void> {
  await rateLimit(ctx, req, res);
  const body = parseJson(raw);
  const inviteText = requireString(body, 'invite', 1024);
  const invite = openRemoteInvite(ctx.adminToken, inviteText, ctx.clock());
  const list = await listOrNotFound(ctx, invite.list);
  await refuseLocalUser(ctx, invite.member);
  const certificate = requireBase64(body, 'certificate', MAX_CERTIFICATE_BASE64);
  const checked = checkRemoteCertificate(certificate, invite.member, ctx.clock());
  const tau = scalarOf(body, 'tau');
  const signature = requireBase64(body, 'signature', 256);
  const message = remoteJoinMessage(list.address, invite.member, inviteText, tau);
  if (!verifyRemoteJoin(message, signature, checked.spki))
    throw new HttpError(400, "signature: not the certificate key's signature over this join");
  noteAuditActor(req, `remote-member:${invite.member}`);
  const used = createHash('sha256').update(inviteText).digest('hex');
  if (!(await ctx.keyStore.useNonce(`list-invite:${list.address}`, used, INVITE_TTL_MS)))
    throw new HttpError(409, 'invite already used; ask the list owner for a new one');
  const sealedTau = sealTau(
    ctx.adminToken,
    list.address,
    invite.member,
    ctx.clock() + JOIN_TTL_MS,
    tau,
    checked.sha256,
  );
  sendJson(res, 200, {
    list: list.address,
    member: invite.member,
    groupId: list.group.groupId,
    groupCertificate: Buffer.from(list.group.certificate).toString('base64'),
    sealedTau,
  });
}

/**
 * The list owner's admit of a remote join: τ opens only with the certificate it was
 * sealed to, and rk = β·τ must map the certificate's key to the list key (rk·D = G_list).
 */
export async function admitRemote(
  ctx: RemoteContext,
  list: MailingList,
  member: string,
  beta: Scalar,
  sealedTau: string,
  certificate: Uint8Array,
): Promise<[number, unknown]> {
  const sha256 = createHash('sha256').update(certificate).digest('hex');
  const tau = openTau(ctx.adminToken, list.address, member, sealedTau, ctx.clock(), sha256);
  await refuseLocalUser(ctx, member);
  const rk = gatewayUnblind(beta, tau);
  const memberPoint = certificatePublicPoint(certificate);
  const listPoint = certificatePublicPoint(list.group.certificate);
  if (!Buffer.from(multiplyPoint(memberPoint, rk)).equals(Buffer.from(listPoint)))
    throw new HttpError(
      400,
      "beta: the resulting key does not map the member's certificate key to the list group",
    );
  const used = createHash('sha256').update(sealedTau).digest('hex');
  if (!(await ctx.keyStore.useNonce(`list-join:${list.address}`, used, JOIN_TTL_MS)))
    throw new HttpError(409, 'join token already used');
  const groupId = Buffer.from(recipientIdOf(certificate)).toString('hex');
  await ctx.keyStore.putRemoteListMember(list.address, member, certificate, groupId, rk);
  return [201, { list: list.address, member, remote: true }];
}
