/**
 * The acme section (docs/configuration.md): it replaces `tls`, so a config with both is
 * refused with a message naming the conflict, and its durations take units.
 */
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';

const acme = {
  directoryUrl: 'https://acme.example/directory',
  domains: ['mx.example.org', 'imap.example.org'],
};

describe('acme config', () => {
  it('is refused together with tls files', () => {
    const result = configSchema.safeParse({ acme, tls: { key: 'k.pem', cert: 'c.pem' } });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'acme: set tls (certificate files) or acme (certificates from a CA), not both',
    ]);
  });

  it('has the documented defaults and takes durations with units', () => {
    const parsed = configSchema.parse({ acme: { ...acme, renewBefore: '10d' } }).acme!;
    expect(parsed).toMatchObject({
      challenge: 'http-01',
      httpPort: 80,
      tlsAlpnPort: 443,
      renewBefore: 10 * 86_400_000,
      checkInterval: 86_400_000,
    });
  });

  it('refuses a name that is not a DNS name and an unknown challenge', () => {
    expect(configSchema.safeParse({ acme: { ...acme, domains: ['not a name'] } }).success).toBe(
      false,
    );
    expect(configSchema.safeParse({ acme: { ...acme, challenge: 'dns-01' } }).success).toBe(false);
    expect(configSchema.safeParse({ acme: { ...acme, domains: [] } }).success).toBe(false);
  });
});
