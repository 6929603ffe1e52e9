/**
 * MTA-STS (RFC 8461; docs/outbound.md "MTA-STS"): a domain's policy that its MX hosts
 * take mail only over TLS with a certificate valid for their name. Discovered with the
 * TXT record `_mta-sts.<domain>` (`v=STSv1; id=…`), fetched from
 * `https://mta-sts.<domain>/.well-known/mta-sts.txt` (certificate valid for that name, no
 * redirects, at most 64 KiB, a time limit), and cached for its `max_age` (in memory and,
 * given a file, across restarts: `<queue dir>/mta-sts.json`): a
 * cached policy is used without asking again while its id is the one in DNS, and stays in
 * force when DNS or the fetch fails (§5.1: that is what protects against an attacker who
 * blocks them). No policy, or none that can be had, means opportunistic TLS as before.
 */
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../config/atomic-file.js';

export interface MtaStsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  /** MX patterns: a host name or `*.` and a domain (one leftmost label). */
  mx: string[];
  maxAgeSeconds: number;
  /** The TXT record's id this policy was fetched for. */
  id: string;
}

const MAX_POLICY_BYTES = 64 * 1024;
const MAX_AGE_LIMIT = 31_557_600;

export class MtaStsError extends Error {}

/** The policy file (RFC 8461 §3.2), or why it is not one. */
export function parsePolicy(text: string, id: string): MtaStsPolicy {
  const fields = new Map<string, string[]>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MtaStsError(`policy line is not "key: value": ${line.slice(0, 60)}`);
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    fields.set(key, [...(fields.get(key) ?? []), value]);
  }
  if (fields.get('version')?.[0] !== 'STSv1') throw new MtaStsError('policy version is not STSv1');
  const mode = fields.get('mode')?.[0];
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none')
    throw new MtaStsError('policy mode is not enforce, testing or none');
  const maxAge = fields.get('max_age')?.[0] ?? '';
  if (!/^\d{1,10}$/.test(maxAge) || Number(maxAge) > MAX_AGE_LIMIT)
    throw new MtaStsError('policy max_age is not a number of seconds up to 31557600');
  const mx = (fields.get('mx') ?? []).map((pattern) => pattern.toLowerCase().replace(/\.$/, ''));
  if (mode !== 'none' && mx.length === 0) throw new MtaStsError('policy names no mx');
  return { mode, mx, maxAgeSeconds: Number(maxAge), id };
}

/** Whether an MX host name matches one of the policy's patterns (RFC 8461 §4.1). */
export function mxMatchesPolicy(host: string, policy: Pick<MtaStsPolicy, 'mx'>): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === name;
    const dot = name.indexOf('.');
    return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
  });
}

/** The `id` of the one `v=STSv1` TXT record, null without one, or an error for several. */
export function policyId(txt: string[]): string | null {
  const records = txt.filter((record) => /^v=STSv1\s*(;|$)/.test(record));
  if (records.length === 0) return null;
  if (records.length > 1) throw new MtaStsError('more than one STSv1 TXT record');
  const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(records[0]!)?.[1];
  if (id === undefined) throw new MtaStsError('the STSv1 TXT record has no valid id');
  return id;
}

export interface MtaStsOptions {
  /** TXT records of a name, each record's strings joined; [] when there is none. */
  txt(name: string): Promise<string[]>;
  /** Per-domain `host:port` to fetch the policy from instead of mta-sts.<domain>:443 (the certificate is still checked for mta-sts.<domain>). */
  origins?: Record<string, string>;
  /** Extra trust anchors (PEM) besides the system's. */
  ca?: string;
  timeoutMs: number;
  logger?: Logger;
  now?: () => number;
  maxEntries?: number;
  /** Where the cache is kept across restarts (§5.1); absent: memory only. */
  cacheFile?: string;
}

interface Cached {
  policy: MtaStsPolicy;
  expires: number;
}

const MAX_CACHE_FILE_BYTES = 16 * 1024 * 1024;

/** The cache file's entries that are still well-formed policies; anything else is dropped. */
function loadCache(file: string, now: number, logger?: Logger): Array<[string, Cached]> {
  let text: string;
  try {
    if (statSync(file).size > MAX_CACHE_FILE_BYTES) throw new MtaStsError('cache file too large');
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      logger?.warn({ file, reason: (error as Error).message }, 'MTA-STS cache not read');
    return [];
  }
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    logger?.warn({ file }, 'MTA-STS cache is not JSON; starting empty');
    return [];
  }
  if (typeof entries !== 'object' || entries === null) return [];
  const kept: Array<[string, Cached]> = [];
  for (const [domain, value] of Object.entries(entries)) {
    const entry = value as Partial<Cached> | null;
    const policy = entry?.policy;
    if (typeof entry?.expires !== 'number' || entry.expires <= now || policy === undefined)
      continue;
    try {
      const text = [
        'version: STSv1',
        `mode: ${policy.mode}`,
        ...policy.mx.map((mx) => `mx: ${mx}`),
        `max_age: ${policy.maxAgeSeconds}`,
      ].join('\n');
      kept.push([domain, { policy: parsePolicy(text, String(policy.id)), expires: entry.expires }]);
    } catch {
      // A hand-edited or damaged entry: fetched again when next needed.
    }
  }
  return kept;
}

export interface MtaSts {
  /** The policy in force for `domain` (ASCII, lower-case), or null: no policy. Never throws. */
  policyFor(domain: string): Promise<MtaStsPolicy | null>;
}

export function mtaSts(options: MtaStsOptions): MtaSts {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, Cached>(
    options.cacheFile === undefined ? [] : loadCache(options.cacheFile, now(), options.logger),
  );
  const save = () => {
    if (options.cacheFile === undefined) return;
    try {
      writeFileAtomic(options.cacheFile, JSON.stringify(Object.fromEntries(cache)));
    } catch (error) {
      options.logger?.warn({ reason: (error as Error).message }, 'MTA-STS cache not written');
    }
  };
  const origins = new Map(
    Object.entries(options.origins ?? {}).map(([domain, origin]) => [domain.toLowerCase(), origin]),
  );

  const remember = (domain: string, policy: MtaStsPolicy) => {
    cache.delete(domain);
    cache.set(domain, { policy, expires: now() + policy.maxAgeSeconds * 1000 });
    while (cache.size > maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
    save();
  };

  return {
    async policyFor(domain) {
      let cached = cache.get(domain);
      if (cached !== undefined && cached.expires <= now()) {
        cache.delete(domain);
        cached = undefined;
      }
      let id: string | null;
      try {
        id = policyId(await options.txt(`_mta-sts.${domain}`));
      } catch (error) {
        options.logger?.warn(
          { domain, reason: (error as Error).message },
          'MTA-STS TXT lookup failed',
        );
        return cached?.policy ?? null;
      }
      // §5.1: no TXT record with a policy cached → the cached policy still applies.
      if (id === null || id === cached?.policy.id) return cached?.policy ?? null;
      try {
        const text = await fetchPolicy(domain, origins.get(domain), options);
        const policy = parsePolicy(text, id);
        remember(domain, policy);
        return policy;
      } catch (error) {
        options.logger?.warn(
          { domain, reason: (error as Error).message },
          'MTA-STS policy fetch failed',
        );
        return cached?.policy ?? null;
      }
    },
  };
}

function fetchPolicy(
  domain: string,
  origin: string | undefined,
  options: Pick<MtaStsOptions, 'ca' | 'timeoutMs'>,
): Promise<string> {
  const name = `mta-sts.${domain}`;
  const target = origin === undefined ? null : /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(origin);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target === null ? name : (target[1] ?? target[2]),
        port: target === null ? 443 : Number(target[3]),
        servername: name,
        headers: { host: name },
        path: '/.well-known/mta-sts.txt',
        method: 'GET',
        agent: false,
        ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
        timeout: options.timeoutMs,
      },
      (res) => {
        // §3.3: only a 200, never a redirect, and text/plain.
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new MtaStsError(`policy fetch: HTTP ${res.statusCode}`));
        }
        if (!/^text\/plain\b/i.test(res.headers['content-type'] ?? '')) {
          res.resume();
          return reject(new MtaStsError('policy fetch: not text/plain'));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_POLICY_BYTES) {
            req.destroy(new MtaStsError('policy fetch: larger than 64 KiB'));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new MtaStsError('policy fetch: timed out')));
    req.on('error', reject);
    req.end();
  });
}
