/**
 * The audit log: one structured line for every admin and owner action (every `/v1/…`
 * request that changes something: user add/remove, token issue, enrolment, device
 * add/revoke, profile, list changes, joins, moderation), whether it succeeded or was
 * refused. The line names who acted (`operator`, `owner:<address>`, `enrolment:<address>`,
 * `remote-member:<address>` — only once their credential was checked; before that
 * `unauthenticated`), the route, the target (the address or list the request is about),
 * the HTTP status and the outcome. It never holds a token, a password hash, a key or a
 * request body.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';

const actors = new WeakMap<IncomingMessage, string>();
const targets = new WeakMap<IncomingMessage, string>();

/** Called once a request's credential has been checked. */
export function noteAuditActor(req: IncomingMessage, actor: string): void {
  actors.set(req, actor);
}

/** The address or list the request is about: the first path parameter, or the body's address. */
export function noteAuditTarget(req: IncomingMessage, params: string[], body: Buffer): void {
  const fromPath = params[0];
  if (fromPath !== undefined) {
    targets.set(req, fromPath);
    return;
  }
  const fromBody = addressInBody(body);
  if (fromBody !== undefined) targets.set(req, fromBody);
}

function addressInBody(body: Buffer): string | undefined {
  if (body.length === 0 || body.length > 64 * 1024) return undefined;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const address = (parsed as Record<string, unknown>)['address'];
    return typeof address === 'string' && address.length <= 254 ? address : undefined;
  } catch {
    return undefined;
  }
}

export type AuditOutcome = 'ok' | 'refused' | 'failed';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string | null;
  status: number;
  outcome: AuditOutcome;
}

/** Reads are not actions; everything else under /v1/ is. */
export function isAuditedRequest(method: string | undefined, path: string): boolean {
  return path.startsWith('/v1/') && method !== 'GET' && method !== 'HEAD';
}

export function auditRecord(req: IncomingMessage, route: string, status: number): AuditRecord {
  return {
    actor: actors.get(req) ?? 'unauthenticated',
    action: `${req.method ?? '?'} ${route}`,
    target: targets.get(req) ?? null,
    status,
    outcome: status < 400 ? 'ok' : status < 500 ? 'refused' : 'failed',
  };
}

export function writeAudit(logger: Logger, record: AuditRecord): void {
  logger.info({ audit: record }, `audit: ${record.action} by ${record.actor}: ${record.outcome}`);
}
