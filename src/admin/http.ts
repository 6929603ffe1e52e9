/**
 * HTTP plumbing for the admin API: bounded JSON bodies, JSON replies, and the one place
 * where errors become status codes. Clients get a short generic reason; details that
 * could help an attacker (which check failed on a signature, whether an account exists
 * behind a token) stay in the logs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DuplicateError,
  KeyStoreArgumentError,
  StaleStateError,
  KeyStoreUnavailableError,
  NotFoundError,
  TokenInvalidError,
} from '../keystore/index.js';
import { RequestSignatureError } from './request-signing.js';

export const MAX_BODY_BYTES = 256 * 1024;

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new HttpError(413, 'request body too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = status === 204 ? '' : JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Maps any error to a status and a client-facing reason; `log` says whether it is ours. */
export function errorReply(error: unknown): { status: number; reason: string; log: boolean } {
  if (error instanceof HttpError) return { status: error.status, reason: error.reason, log: false };
  if (error instanceof RequestSignatureError) {
    return error.reason === 'replayed'
      ? { status: 409, reason: 'request replayed', log: false }
      : { status: 401, reason: 'request signature not accepted', log: false };
  }
  if (error instanceof TokenInvalidError)
    return { status: 401, reason: 'enrolment token not accepted', log: false };
  if (error instanceof NotFoundError)
    return { status: 404, reason: `${error.record} not found`, log: false };
  if (error instanceof DuplicateError) return { status: 409, reason: error.message, log: false };
  if (error instanceof StaleStateError) return { status: 409, reason: error.message, log: false };
  if (error instanceof KeyStoreArgumentError)
    return { status: 400, reason: error.message, log: false };
  if (error instanceof KeyStoreUnavailableError) {
    return { status: 503, reason: 'key store unavailable, try again later', log: true };
  }
  return { status: 500, reason: 'internal error', log: true };
}

export function requireString(body: Record<string, unknown>, field: string, max = 4096): string {
  const value = body[field];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new HttpError(400, `${field}: expected a non-empty string of at most ${max} characters`);
  }
  return value;
}

export function requireBase64(
  body: Record<string, unknown>,
  field: string,
  max = 16384,
): Uint8Array {
  const text = requireString(body, field, max);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new HttpError(400, `${field}: expected base64`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}
