/**
 * The admin/profile server's request counter. `route` is the matched route pattern
 * (`/v1/users/:param/token`), never the raw path, so no address reaches a label.
 */
import { Counter, type Registry } from 'prom-client';

export interface AdminMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
}

export function createAdminMetrics(registry: Registry): AdminMetrics {
  return {
    requests: new Counter({
      name: 'recrypt_admin_requests_total',
      help: 'HTTP requests to the admin/profile server by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
  };
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A client may send any token as the method; only the known ones become label values. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && METHODS.has(method) ? method : 'other';
}

/** `^\/v1\/users\/([^/]+)\/token$` → `/v1/users/:param/token`. */
export function patternLabel(pattern: RegExp): string {
  return pattern.source
    .replace(/^\^|\$$/g, '')
    .replace(/\([^)]*\)/g, ':param')
    .replace(/\\\//g, '/');
}
