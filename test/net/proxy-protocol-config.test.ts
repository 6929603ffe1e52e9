/**
 * The `proxyProtocol` option of each listener group (docs/configuration.md "PROXY
 * protocol"): off by default, set from the environment as documented, durations and the
 * v2 cap defaulted, and a trusted entry that is no address or CIDR range refused with
 * its path.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { withProxyProtocol } from '../../src/net/proxy-listener.js';

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('proxyProtocol config', () => {
  it('is off on every listener group by default', () => {
    const { config } = loadConfig(undefined, {});
    for (const group of [config.smtp, config.imap, config.admin, config.operator])
      expect(withProxyProtocol(group.proxyProtocol)).toEqual({});
  });

  it('is set per group from the environment, with the defaults filled in', () => {
    const { config } = loadConfig(undefined, {
      RECRYPT_SMTP__PROXY_PROTOCOL__TRUSTED: '["10.0.0.0/24", "2001:db8::5"]',
      RECRYPT_IMAP__PROXY_PROTOCOL: '{"trusted": ["192.0.2.7"], "headerTimeout": "2s"}',
      RECRYPT_ADMIN__PROXY_PROTOCOL__TRUSTED: '["127.0.0.1"]',
      RECRYPT_ADMIN__PROXY_PROTOCOL__MAX_HEADER_BYTES: '1024',
    });
    expect(withProxyProtocol(config.smtp.proxyProtocol)).toEqual({
      proxyProtocol: {
        trusted: ['10.0.0.0/24', '2001:db8::5'],
        headerTimeoutMs: 5000,
        maxHeaderBytes: 536,
      },
    });
    expect(withProxyProtocol(config.imap.proxyProtocol).proxyProtocol?.headerTimeoutMs).toBe(2000);
    expect(withProxyProtocol(config.admin.proxyProtocol).proxyProtocol?.maxHeaderBytes).toBe(1024);
    expect(config.operator.proxyProtocol).toBeUndefined();
  });

  it('refuses a trusted entry that is no address or range, and an empty list', () => {
    const problems = problemsOf(() =>
      loadConfig(undefined, {
        RECRYPT_SMTP__PROXY_PROTOCOL__TRUSTED: '["haproxy.internal", "10.0.0.0/40"]',
        RECRYPT_IMAP__PROXY_PROTOCOL__TRUSTED: '[]',
      }),
    );
    const text = problems.join('\n');
    expect(text).toMatch(/smtp\.proxyProtocol\.trusted\.0: an IP address or CIDR range/);
    expect(text).toMatch(/smtp\.proxyProtocol\.trusted\.1: an IP address or CIDR range/);
    expect(text).toMatch(/imap\.proxyProtocol\.trusted/);
  });
});
