/**
 * Where mail goes: routes, then the relay, then DNS MX (RFC 5321 §5.1, RFC 7505) with an
 * injected resolver (no internet here); and the outbound config section's parsing.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { type MxResolver, domainOf, planRoute } from '../../src/outbound/routing.js';
import { outboundConfig } from '../helpers/outbound-remote.js';

function dnsError(code: string): Error {
  return Object.assign(new Error(`query ${code}`), { code });
}

/** A zone: domain → MX records / addresses; a string value is the error code to throw. */
function resolverFor(zone: {
  mx?: Record<string, Array<{ exchange: string; priority: number }> | string>;
  a?: Record<string, string[] | string>;
  aaaa?: Record<string, string[] | string>;
}): MxResolver & { asked: string[] } {
  const asked: string[] = [];
  const answer = <T>(
    table: Record<string, T | string> | undefined,
    name: string,
    kind: string,
  ): Promise<T> => {
    asked.push(`${kind} ${name}`);
    const value = table?.[name];
    if (value === undefined) return Promise.reject(dnsError('ENODATA'));
    if (typeof value === 'string') return Promise.reject(dnsError(value));
    return Promise.resolve(value);
  };
  return {
    asked,
    resolveMx: (name) => answer(zone.mx, name, 'MX'),
    resolve4: (name) => answer(zone.a, name, 'A'),
    resolve6: (name) => answer(zone.aaaa, name, 'AAAA'),
  };
}

const noRouting = outboundConfig({});

describe('MX routing', () => {
  it('uses the MX hosts by preference, on port 25, asking DNS in ASCII', async () => {
    const resolver = resolverFor({
      mx: {
        'example.org': [
          { exchange: 'backup.example.org', priority: 20 },
          { exchange: 'MX1.example.org.', priority: 10 },
          { exchange: 'last.example.net', priority: 30 },
        ],
        'xn--bcher-kva.example': [{ exchange: 'mx.books.example', priority: 5 }],
      },
    });
    const plan = await planRoute('Alice@Example.ORG', { config: noRouting, resolver });
    expect(plan).toEqual({
      kind: 'hops',
      hops: ['mx1.example.org', 'backup.example.org', 'last.example.net'].map((host) => ({
        host,
        port: 25,
        secure: false,
        relay: false,
        mx: true,
      })),
    });
    const idn = await planRoute('leser@bücher.example', { config: noRouting, resolver });
    expect(idn).toMatchObject({ kind: 'hops', hops: [{ host: 'mx.books.example' }] });
    expect(resolver.asked).toContain('MX xn--bcher-kva.example');
  });

  it('shuffles MX hosts of equal preference (both orders occur)', async () => {
    const resolver = resolverFor({
      mx: {
        'e.test': [
          { exchange: 'a.e.test', priority: 10 },
          { exchange: 'b.e.test', priority: 10 },
          { exchange: 'z.e.test', priority: 5 },
        ],
      },
    });
    const orders = new Set<string>();
    for (let i = 0; i < 200 && orders.size < 2; i++) {
      const plan = await planRoute('x@e.test', { config: noRouting, resolver });
      if (plan.kind !== 'hops') throw new Error('expected hops');
      expect(plan.hops[0]!.host).toBe('z.e.test');
      orders.add(plan.hops.map((hop) => hop.host).join(','));
    }
    expect(orders).toEqual(new Set(['z.e.test,a.e.test,b.e.test', 'z.e.test,b.e.test,a.e.test']));
  });

  it('without MX records falls back to the domain itself when it has an address', async () => {
    const v4 = await planRoute('x@plain.test', {
      config: noRouting,
      resolver: resolverFor({ a: { 'plain.test': ['192.0.2.1'] } }),
    });
    expect(v4).toEqual({
      kind: 'hops',
      hops: [{ host: 'plain.test', port: 25, secure: false, relay: false }],
    });
    const v6 = await planRoute('x@six.test', {
      config: noRouting,
      resolver: resolverFor({ aaaa: { 'six.test': ['2001:db8::1'] } }),
    });
    expect(v6).toMatchObject({ kind: 'hops', hops: [{ host: 'six.test' }] });
  });

  it('fails permanently for a null MX, a domain that does not exist, or one with no MX and no address', async () => {
    const resolver = resolverFor({
      mx: { 'nullmx.test': [{ exchange: '', priority: 0 }], 'gone.test': 'ENOTFOUND' },
    });
    expect(await planRoute('x@nullmx.test', { config: noRouting, resolver })).toMatchObject({
      kind: 'failed',
      permanent: true,
      status: '5.1.10',
    });
    expect(await planRoute('x@gone.test', { config: noRouting, resolver })).toMatchObject({
      kind: 'failed',
      permanent: true,
      status: '5.1.2',
    });
    expect(await planRoute('x@empty.test', { config: noRouting, resolver })).toMatchObject({
      kind: 'failed',
      permanent: true,
      reason: 'empty.test has no MX and no address record',
    });
  });

  it('treats DNS trouble as temporary', async () => {
    const resolver = resolverFor({
      mx: {
        'servfail.test': 'ESERVFAIL',
        'mixed.test': [
          { exchange: '.', priority: 0 },
          { exchange: 'mx.mixed.test', priority: 10 },
        ],
      },
      a: { 'noanswer.test': 'ETIMEOUT' },
    });
    for (const address of ['x@servfail.test', 'x@noanswer.test', 'x@mixed.test']) {
      expect(await planRoute(address, { config: noRouting, resolver }), address).toMatchObject({
        kind: 'failed',
        permanent: false,
      });
    }
  });

  it('routes win over the relay, the relay over DNS; DNS is not asked for either', async () => {
    const resolver = resolverFor({});
    const config = outboundConfig({
      routes: { 'Home.Test': '127.0.0.1:2525', 'v6.test': '[::1]:2526' },
      relay: {
        host: 'smarthost.example',
        port: 465,
        secure: true,
        user: 'gw',
        passwordFile: '/dev/null',
      },
    });
    expect(await planRoute('a@home.test', { config, resolver })).toEqual({
      kind: 'hops',
      hops: [{ host: '127.0.0.1', port: 2525, secure: false, relay: false }],
    });
    expect(await planRoute('a@v6.test', { config, resolver })).toMatchObject({
      hops: [{ host: '::1', port: 2526 }],
    });
    expect(await planRoute('a@elsewhere.test', { config, resolver, relayPassword: 'pw' })).toEqual({
      kind: 'hops',
      hops: [
        {
          host: 'smarthost.example',
          port: 465,
          secure: true,
          relay: true,
          auth: { user: 'gw', pass: 'pw' },
        },
      ],
    });
    expect(resolver.asked).toEqual([]);
  });

  it('takes the domain after the last @', () => {
    expect(domainOf('"odd@local"@Example.org')).toBe('example.org');
  });
});

describe('outbound config', () => {
  it('has defaults, so a config without the section is valid', () => {
    expect(configSchema.parse({}).outbound).toEqual({
      concurrency: 4,
      routes: {},
      dkim: {},
      requireTls: false,
      verifyTls: false,
      connectTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 300_000,
      retryInitial: 60_000,
      retryMax: 3_600_000,
      bounceAfter: 5 * 86_400_000,
      lease: 60_000,
      mtaSts: { enabled: true, origins: {}, timeout: 10_000 },
      dane: { enabled: false },
    });
  });

  it('reads durations as milliseconds or with a unit, and refuses nonsense', () => {
    expect(
      outboundConfig({ bounceAfter: '2d', retryInitial: 1500, retryMax: '90s' }),
    ).toMatchObject({
      bounceAfter: 172_800_000,
      retryInitial: 1500,
      retryMax: 90_000,
    });
    for (const bad of [
      { bounceAfter: '2 days' },
      { retryMax: -1 },
      { routes: { 'a.test': 'no-port' } },
      { relay: { host: 'x', user: 'u' } },
      { concurrency: 0 },
      { colour: 'blue' },
    ]) {
      expect(configSchema.safeParse({ outbound: bad }).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('is set from the environment as docs/configuration.md says', () => {
    const { config } = loadConfig(undefined, {
      RECRYPT_OUTBOUND__BOUNCE_AFTER: '2d',
      RECRYPT_OUTBOUND__RETRY_MAX: '600000',
      RECRYPT_OUTBOUND__ROUTES: '{"example.org":"127.0.0.1:2525"}',
      RECRYPT_OUTBOUND__RELAY__HOST: 'smarthost.example',
      RECRYPT_OUTBOUND__REQUIRE_TLS: 'true',
    });
    expect(config.outbound).toMatchObject({
      bounceAfter: 172_800_000,
      retryMax: 600_000,
      routes: { 'example.org': '127.0.0.1:2525' },
      relay: { host: 'smarthost.example', port: 587, secure: false },
      requireTls: true,
    });
  });
});

describe('the gateway’s own domains', () => {
  it('go to its own MX, after a configured route and before DNS', async () => {
    const resolver = resolverFor({ mx: { 'lists.test': [{ exchange: 'far.away', priority: 1 }] } });
    const localHop = async (domain: string) =>
      domain === 'lists.test' ? { host: '127.0.0.1', port: 2525 } : null;
    expect(
      await planRoute('team-bounces@Lists.Test', { config: noRouting, resolver, localHop }),
    ).toEqual({
      kind: 'hops',
      hops: [{ host: '127.0.0.1', port: 2525, secure: false, relay: false }],
    });
    expect(resolver.asked).toEqual([]);
    const routed = outboundConfig({ routes: { 'lists.test': '10.0.0.9:26' } });
    expect(await planRoute('x@lists.test', { config: routed, resolver, localHop })).toMatchObject({
      hops: [{ host: '10.0.0.9', port: 26 }],
    });
    const elsewhere = await planRoute('x@other.test', { config: noRouting, resolver, localHop });
    expect(elsewhere.kind).toBe('failed');
  });
});
