/**
 * The public profile endpoints, as a function from a request's method, path and
 * If-None-Match to a response: no sockets here (http-handler.ts adapts it to node:http).
 *
 *   GET|HEAD /.well-known/mail-profile/<address>           the signed profile (application/jose)
 *   GET|HEAD /.well-known/mail-profile/<address>/group.cer  the group certificate (application/pkix-cert)
 *
 * `<address>` is percent-encoded (encodeURIComponent; a literal '@' is accepted too).
 * Unknown addresses get the same 404 as anything else absent, so the endpoint says no
 * more than "not here"; malformed ones get 400; other methods 405.
 */
import { createHash } from 'node:crypto';
import { canonicalAddress } from './address.js';
import { ProfileError } from './errors.js';

export const PROFILE_PATH_PREFIX = '/.well-known/mail-profile/';
export const GROUP_CERTIFICATE_FILE = 'group.cer';
export const PROFILE_MEDIA_TYPE = 'application/jose';
export const CERTIFICATE_MEDIA_TYPE = 'application/pkix-cert';
/** Profiles change when the owner republishes; five minutes bounds how stale a sender can be. */
export const PROFILE_MAX_AGE_SECONDS = 300;

/** The narrow lookup the endpoints need; the key store's published profiles provide it. */
export interface ProfileSource {
  /** The compact JWS last published for this (canonical, lower-case) address, or null. */
  getSignedProfile(address: string): Promise<string | null>;
  /** The DER group certificate of this (canonical, lower-case) address, or null. */
  getGroupCertificate(address: string): Promise<Uint8Array | null>;
}

export interface ProfileHttpRequest {
  method: string;
  /** The request target as received: path and optional query. */
  url: string;
  ifNoneMatch?: string | undefined;
}

export interface ProfileHttpResponse {
  status: number;
  headers: Record<string, string>;
  /** The body a GET gets; the adapter sends none for HEAD or 304. */
  body: Uint8Array;
}

/** The path of an address's profile (append `/group.cer` for its certificate). */
export function profilePath(address: string): string {
  return `${PROFILE_PATH_PREFIX}${encodeURIComponent(canonicalAddress(address))}`;
}

type Route = { kind: 'profile' | 'certificate'; address: string } | { kind: 'malformed' };

/** Which resource a path names; null when the path is not under the prefix at all. */
export function matchProfilePath(url: string): Route | null {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (!path.startsWith(PROFILE_PATH_PREFIX)) return null;
  const segments = path.slice(PROFILE_PATH_PREFIX.length).split('/');
  const [encoded, file, ...rest] = segments;
  if (encoded === undefined || rest.length > 0) return { kind: 'malformed' };
  if (file !== undefined && file !== GROUP_CERTIFICATE_FILE) return { kind: 'malformed' };
  let address: string;
  try {
    address = canonicalAddress(decodeURIComponent(encoded));
  } catch {
    return { kind: 'malformed' };
  }
  return { kind: file === undefined ? 'profile' : 'certificate', address };
}

function plain(
  status: number,
  text: string,
  extra: Record<string, string> = {},
): ProfileHttpResponse {
  const body = new Uint8Array(Buffer.from(`${text}\n`));
  return {
    status,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...extra,
    },
    body,
  };
}

function etagOf(body: Uint8Array): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}

/** RFC 9110 §13.1.2: weak comparison, a list of tags, or '*'. */
function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}

/** Answers a request under the prefix; null when the path is someone else's. */
export async function handleProfileRequest(
  request: ProfileHttpRequest,
  source: ProfileSource,
): Promise<ProfileHttpResponse | null> {
  const route = matchProfilePath(request.url);
  if (route === null) return null;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return plain(405, 'method not allowed', { allow: 'GET, HEAD' });
  }
  if (route.kind === 'malformed') return plain(400, 'malformed address');
  let body: Uint8Array | null;
  try {
    if (route.kind === 'profile') {
      const jws = await source.getSignedProfile(route.address);
      body = jws === null ? null : new Uint8Array(Buffer.from(jws, 'ascii'));
    } else {
      body = await source.getGroupCertificate(route.address);
    }
  } catch (error) {
    // A source that refuses the address is a bad request; anything else is the store being down.
    if (error instanceof ProfileError && error.code === 'invalid-argument')
      return plain(400, 'malformed address');
    return plain(503, 'temporarily unavailable', { 'retry-after': '30' });
  }
  if (body === null) return plain(404, 'not found');
  const etag = etagOf(body);
  const cacheHeaders = {
    etag,
    'cache-control': `public, max-age=${PROFILE_MAX_AGE_SECONDS}`,
    // The documents are public; let web mail clients fetch them from script.
    'access-control-allow-origin': '*',
    'x-content-type-options': 'nosniff',
  };
  if (matchesEtag(request.ifNoneMatch, etag)) {
    return { status: 304, headers: cacheHeaders, body: new Uint8Array(0) };
  }
  return {
    status: 200,
    headers: {
      'content-type': route.kind === 'profile' ? PROFILE_MEDIA_TYPE : CERTIFICATE_MEDIA_TYPE,
      'content-length': String(body.length),
      ...cacheHeaders,
    },
    body,
  };
}
