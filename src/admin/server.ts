/**
 * The gateway's HTTPS listeners (docs/admin-api.md). The gateway runs two:
 * - public (`admin.*`): enrolment, owner-signed routes, remote list joins, the mail
 *   profiles and group certificates (`/.well-known/mail-profile/…`), `/healthz`; the
 *   unauthenticated routes are rate-limited per client IP;
 * - operator (`operator.*`, loopback): the admin-token routes, `/readyz`, `/metrics`.
 * A route of the other audience answers 404. TLS by default; plain HTTP only when
 * explicitly asked (tests behind a TLS terminator).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
  type Server,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { KeyStore } from '../keystore/index.js';
import {
  GROUP_CERTIFICATE_FILE,
  PROFILE_PATH_PREFIX,
  createProfileHandler,
  type ProfileSource,
} from '../profiles/index.js';
import { adminRouteOf, handleAdminRequest, type AdminApiContext, type Audience } from './api.js';
import { errorReply, sendJson } from './http.js';
import { methodLabel, type AdminMetrics } from './metrics.js';
import { auditRecord, isAuditedRequest, writeAudit } from './audit.js';
import { createRateLimiter, type RateLimiter, type RateLimitSettings } from './rate-limit.js';
import { requireProxyProtocol, type ProxyProtocolSettings } from '../net/proxy-listener.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  /** PEM key and certificate; omit only for plain HTTP (`insecureHttp`). */
  tls?: { key: string; cert: string };
  insecureHttp?: boolean;
  /**
   * What this listener serves. The gateway gives each audience its own listener; one
   * listener serving both is for tests of the routes themselves.
   */
  audiences: readonly Audience[];
  /** Per client IP on the public, unauthenticated routes; none when omitted. */
  rateLimit?: RateLimitSettings;
  /** The buckets for `rateLimit`, when they are shared (shared-rate-limit.ts); else this process's. */
  rateLimiter?: RateLimiter;
  /** The remote-join limit's buckets, when shared (list-remote.ts); else this process's. */
  remoteJoinLimiter?: RateLimiter;
  /** When set, /metrics needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
  keyStore: KeyStore;
  adminToken: string;
  imapSettings: AdminApiContext['imapSettings'];
  /** Held posts of moderated lists: store, delivery on approval, notices on rejection. */
  moderation?: AdminApiContext['moderation'];
  /** Extra readiness checks (mail store reachable, …); each throws when not ready. */
  readinessChecks?: Record<string, () => Promise<void>>;
  /** Served at /metrics in the Prometheus text format. */
  metrics?: Registry;
  /** Counts requests by route pattern and status (see metrics.ts). */
  requestMetrics?: AdminMetrics;
  logger?: Logger;
  clock?: () => number;
  /**
   * Only these balancers may connect, each connection starting with a PROXY header whose
   * client address the rate limit and the audit log see; off when absent.
   */
  proxyProtocol?: ProxyProtocolSettings;
}

export interface AdminServer {
  port: number;
  server: Server;
  setTls(tls: { key: string; cert: string }): void;
  close(): Promise<void>;
}

export function profileSourceOf(keyStore: KeyStore): ProfileSource {
  return {
    getSignedProfile: (address) => keyStore.getProfile(address),
    getGroupCertificate: async (address) =>
      (await keyStore.getUser(address))?.owner?.groupCertificate ?? null,
  };
}

const FIXED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** Constant-time whatever the lengths: compare digests. */
function bearerMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return presented.length > 0 && timingSafeEqual(digest(presented), digest(token));
}

/** The public routes anyone may call without a credential (owner routes carry a signature). */
function isRateLimited(path: string): boolean {
  return path !== '/healthz' && path !== '/v1/owner' && !path.startsWith('/v1/owner/');
}

/** The label for a request path: a route pattern, never the path itself (it holds addresses). */
function routeLabel(path: string): string {
  if (FIXED_ROUTES.has(path)) return path;
  if (path.startsWith('/v1/')) return adminRouteOf(path) ?? '/v1/unknown';
  if (path.startsWith(PROFILE_PATH_PREFIX)) {
    return path.endsWith(`/${GROUP_CERTIFICATE_FILE}`)
      ? `${PROFILE_PATH_PREFIX}:address/${GROUP_CERTIFICATE_FILE}`
      : `${PROFILE_PATH_PREFIX}:address`;
  }
  return 'other';
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  if (options.tls === undefined && options.insecureHttp !== true) {
    throw new Error('the admin server needs TLS (or insecureHttp: true)');
  }
  const ctx: AdminApiContext = {
    keyStore: options.keyStore,
    adminToken: options.adminToken,
    clock: options.clock ?? Date.now,
    imapSettings: options.imapSettings,
    ...(options.moderation !== undefined ? { moderation: options.moderation } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.remoteJoinLimiter !== undefined
      ? { remoteJoinLimiter: options.remoteJoinLimiter }
      : {}),
  };
  const servesPublic = options.audiences.includes('public');
  const servesOperator = options.audiences.includes('operator');
  const limiter = !servesPublic
    ? undefined
    : (options.rateLimiter ??
      (options.rateLimit !== undefined
        ? createRateLimiter(options.rateLimit, options.clock)
        : undefined));
  const profiles = createProfileHandler(profileSourceOf(options.keyStore));
  const checks = { keyStore: () => options.keyStore.health(), ...options.readinessChecks };

  const requests = options.requestMetrics?.requests;
  const auditLogger = options.logger?.child({ part: 'audit' });
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (requests !== undefined) {
      const route = routeLabel(path);
      res.once('finish', () =>
        requests.inc({ method: methodLabel(req.method), route, status: String(res.statusCode) }),
      );
    }
    if (auditLogger !== undefined && isAuditedRequest(req.method, path)) {
      // 'close' as well as 'finish': a request cut off mid-way is recorded too.
      let written = false;
      const write = () => {
        if (written) return;
        written = true;
        writeAudit(auditLogger, auditRecord(req, routeLabel(path), res.statusCode));
      };
      res.once('finish', write);
      res.once('close', write);
    }
    void route(req, res).catch((error: unknown) => {
      const reply = errorReply(error);
      if (reply.log)
        options.logger?.error({ err: error, path: req.url?.split('?')[0] }, 'admin request failed');
      if (!res.headersSent) sendJson(res, reply.status, { error: reply.reason });
      else res.destroy();
    });
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (limiter !== undefined && isRateLimited(path)) {
      const verdict = await limiter.take(req.socket.remoteAddress ?? 'unknown');
      if (!verdict.allowed) {
        res.setHeader('retry-after', String(verdict.retryAfterSeconds));
        return sendJson(res, 429, { error: 'too many requests, try again later' });
      }
    }
    if (!servesOperator) {
      if (path === '/metrics' || path === '/readyz')
        return sendJson(res, 404, { error: 'not found' });
    } else if (path === '/metrics' && options.metrics !== undefined) {
      if (options.metricsToken !== undefined && !bearerMatches(req, options.metricsToken)) {
        res.setHeader('www-authenticate', 'Bearer');
        return sendJson(res, 401, { error: 'metrics token not accepted' });
      }
      const text = await options.metrics.metrics();
      res.writeHead(200, {
        'content-type': options.metrics.contentType,
        'cache-control': 'no-store',
      });
      res.end(text);
      return;
    }
    if (path === '/readyz') {
      const failing: string[] = [];
      for (const [name, check] of Object.entries(checks)) {
        try {
          await check();
        } catch {
          failing.push(name);
        }
      }
      return sendJson(res, failing.length === 0 ? 200 : 503, {
        status: failing.length === 0 ? 'ready' : 'not ready',
        failing,
      });
    }
    if (await handleAdminRequest(ctx, req, res, options.audiences)) return;
    if (servesPublic && (await profiles(req, res))) return;
    sendJson(res, 404, { error: 'not found' });
  }

  const server: Server =
    options.tls !== undefined
      ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener)
      : createHttpServer(listener);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  if (options.proxyProtocol !== undefined) {
    requireProxyProtocol(server, options.proxyProtocol, {
      logger: options.logger ?? pino({ enabled: false }),
      listener: options.audiences.join('+'),
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    setTls(tls) {
      if ('setSecureContext' in server) {
        (server as unknown as { setSecureContext(o: object): void }).setSecureContext({
          key: tls.key,
          cert: tls.cert,
        });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
