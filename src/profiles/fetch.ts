/**
 * The sender's side: fetch an address's profile over HTTPS and verify it. The URL is
 * https://<domain>/.well-known/mail-profile/<address> unless `baseUrl` overrides the
 * origin (tests, or a gateway not at the mail domain). TLS is always verified (`ca` adds
 * trust anchors); redirects are not followed; bodies are capped at 64 KiB; the
 * Content-Type is not trusted: the signature is what counts.
 */
import { request } from 'node:https';
import { parseAddress } from './address.js';
import { ProfileFetchError } from './errors.js';
import { MAX_JWS_LENGTH } from './jws.js';
import { verifyProfile, type VerifiedProfile } from './profile.js';
import { profilePath } from './routes.js';

export interface FetchProfileOptions {
  /** Origin to fetch from, e.g. `https://127.0.0.1:8443`; default `https://<domain>`. */
  baseUrl?: string;
  /** Extra trust anchors (PEM), e.g. a self-signed gateway certificate. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** A UDF the caller already trusts for this owner. */
  expectedUdf?: string;
  now?: Date;
  /** Whole-request timeout; default 10 s. */
  timeoutMs?: number;
}

export interface FetchedProfile extends VerifiedProfile {
  url: string;
  jws: string;
}

export function profileUrl(address: string, baseUrl?: string): string {
  const origin = baseUrl ?? `https://${parseAddress(address).domain}`;
  const url = new URL(profilePath(address), origin);
  if (url.protocol !== 'https:')
    throw new ProfileFetchError('network', 'profile URL: only https is fetched');
  return url.toString();
}

function get(url: string, options: FetchProfileOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 10_000;
    // Settle once: after we abort, the socket's own errors ("aborted", resets) must not
    // replace the reason we aborted for.
    let settled = false;
    const fail = (error: ProfileFetchError): void => {
      if (!settled) {
        settled = true;
        reject(error);
      }
      req.destroy();
    };
    const req = request(
      url,
      {
        method: 'GET',
        headers: { accept: 'application/jose' },
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        rejectUnauthorized: true,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          fail(
            status === 404
              ? new ProfileFetchError('not-found', 'no profile published for this address', status)
              : new ProfileFetchError(
                  'http-status',
                  `profile server answered HTTP ${status}`,
                  status,
                ),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
          if (length > MAX_JWS_LENGTH)
            fail(new ProfileFetchError('too-large', 'profile larger than 64 KiB'));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          if (!settled) {
            settled = true;
            resolve(Buffer.concat(chunks).toString('utf8'));
          }
        });
        res.on('error', (error) =>
          fail(new ProfileFetchError('network', `reading the profile failed: ${error.message}`)),
        );
      },
    );
    req.setTimeout(timeoutMs, () =>
      fail(new ProfileFetchError('timeout', `no answer within ${timeoutMs} ms`)),
    );
    req.on('error', (error) =>
      fail(new ProfileFetchError('network', `fetching the profile failed: ${error.message}`)),
    );
    req.end();
  });
}

/** Fetches and verifies; throws ProfileFetchError (transport) or ProfileError (verification). */
export async function fetchProfile(
  address: string,
  options: FetchProfileOptions = {},
): Promise<FetchedProfile> {
  const url = profileUrl(address, options.baseUrl);
  const jws = await get(url, options);
  const verified = verifyProfile(jws, {
    expectedAddress: address,
    ...(options.expectedUdf === undefined ? {} : { expectedUdf: options.expectedUdf }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return { ...verified, url, jws };
}
