/**
 * The admin API client both the operator's and the owner's commands use: JSON over
 * HTTPS (node:https; TLS always verified: `ca` is a trust anchor, or the gateway's
 * self-signed certificate trusted by its key, gateway-trust.ts), bounded replies, a whole-request timeout. Authenticates with the
 * operator's bearer token, or signs each request with the owner key
 * (src/admin/request-signing.ts: method, path, body, timestamp, nonce). Any failure
 * becomes one OwnerError line: unreachable, or the gateway's own reason and status.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { SIGNATURE_HEADER, signRequest } from '../admin/request-signing.js';
import { OwnerError } from './errors.js';
import { tlsTrustFor } from './gateway-trust.js';

const MAX_REPLY_BYTES = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 15_000;

export type GatewayAuth =
  | { kind: 'none' }
  | { kind: 'admin'; token: string }
  | { kind: 'owner'; address: string; key: KeyObject };

export interface GatewayClientOptions {
  /** Origin of the admin API, e.g. https://127.0.0.1:8443. */
  gateway: string;
  /** Extra trust anchor (PEM) for a self-signed gateway certificate. */
  ca?: string | null;
  auth: GatewayAuth;
  timeoutMs?: number;
  /** Larger replies fail (default 1 MiB); a held list post can be as large as a message. */
  maxReplyBytes?: number;
}

export interface GatewayReply {
  status: number;
  body: Buffer;
}

export function parseGatewayUrl(gateway: string): URL {
  let url: URL;
  try {
    url = new URL(gateway);
  } catch {
    throw new OwnerError('invalid-argument', `gateway: not a URL: ${gateway}`);
  }
  if (
    url.protocol !== 'https:' ||
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '/' && url.pathname !== '')
  ) {
    throw new OwnerError(
      'invalid-argument',
      `gateway: expected https://host[:port], got ${gateway}`,
    );
  }
  return url;
}

/** Sends one request; resolves with any HTTP status (callers decide), rejects only on transport. */
export async function sendRaw(
  options: GatewayClientOptions,
  method: string,
  path: string,
  body?: Buffer,
): Promise<GatewayReply> {
  const origin = parseGatewayUrl(options.gateway);
  const trust = await tlsTrustFor(options.ca, origin, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const payload = body ?? Buffer.alloc(0);
  const headers: Record<string, string | number> = { accept: 'application/json' };
  if (payload.length > 0) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  if (options.auth.kind === 'admin') headers['authorization'] = `Bearer ${options.auth.token}`;
  if (options.auth.kind === 'owner') {
    headers[SIGNATURE_HEADER] = signRequest(
      {
        method,
        path,
        body: payload,
        address: options.auth.address,
        timestamp: Date.now(),
        nonce: randomBytes(18).toString('base64url'),
      },
      options.auth.key,
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (message: string) => {
      if (!settled) {
        settled = true;
        reject(
          new OwnerError(
            'gateway-unreachable',
            `cannot reach the gateway at ${origin.origin}: ${message}`,
          ),
        );
      }
      req.destroy();
    };
    const req = httpsRequest(
      {
        protocol: 'https:',
        hostname: origin.hostname.replace(/^\[|\]$/g, ''),
        port: origin.port === '' ? 443 : Number(origin.port),
        method,
        path,
        headers,
        ...trust,
        rejectUnauthorized: true,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > (options.maxReplyBytes ?? MAX_REPLY_BYTES)) fail('reply too large');
          else chunks.push(chunk);
        });
        res.on('end', () => {
          if (!settled) {
            settled = true;
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
          }
        });
        res.on('error', (error) => fail(error.message));
      },
    );
    req.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    req.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message));
    req.end(payload);
  });
}

function reasonOf(reply: GatewayReply): string {
  try {
    const json = JSON.parse(reply.body.toString('utf8')) as { error?: unknown };
    if (typeof json.error === 'string') return json.error.replace(/[\r\n]+/g, ' ').slice(0, 300);
  } catch {
    // Not our JSON (a proxy's page): fall through to the status alone.
  }
  return `HTTP ${reply.status}`;
}

/** A JSON request that must succeed (2xx); OwnerError('gateway-refused') with the gateway's reason otherwise. */
export async function callGateway<T = Record<string, unknown>>(
  options: GatewayClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const reply = await sendRaw(
    options,
    method,
    path,
    body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8'),
  );
  if (reply.status < 200 || reply.status > 299) {
    throw new OwnerError(
      'gateway-refused',
      `the gateway refused: ${reasonOf(reply)} (HTTP ${reply.status})`,
      reply.status,
    );
  }
  if (reply.status === 204 || reply.body.length === 0) return {} as T;
  try {
    return JSON.parse(reply.body.toString('utf8')) as T;
  } catch {
    throw new OwnerError(
      'gateway-refused',
      `the gateway answered HTTP ${reply.status} with a body that is not JSON`,
      reply.status,
    );
  }
}
