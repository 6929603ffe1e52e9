/**
 * The MTA-STS policy text, TXT record and MX patterns (RFC 8461 §3.1, §3.2, §4.1) as
 * src/outbound/mta-sts.ts reads them, including the bad input a policy host or DNS could
 * send: each is refused with a reason, never half-read.
 */
import { describe, expect, it } from 'vitest';
import { mxMatchesPolicy, parsePolicy, policyId } from '../../src/outbound/mta-sts.js';

describe('MTA-STS policy', () => {
  it('reads a policy with CRLF or LF lines and several mx patterns', () => {
    const policy = parsePolicy(
      'version: STSv1\r\nmode: enforce\nmx: MX1.example.org.\r\nmx: *.backup.example.net\nmax_age: 604800\n',
      'abc',
    );
    expect(policy).toEqual({
      mode: 'enforce',
      mx: ['mx1.example.org', '*.backup.example.net'],
      maxAgeSeconds: 604_800,
      id: 'abc',
    });
  });

  it('refuses what is not a policy', () => {
    const bad = [
      ['mode: enforce\nmx: a.example\nmax_age: 1\n', /version/],
      ['version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n', /version/],
      ['version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n', /mode/],
      ['version: STSv1\nmode: enforce\nmax_age: 1\n', /no mx/],
      ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n', /max_age/],
      ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -5\n', /max_age/],
      ['<html>not found</html>', /key: value/],
    ] as const;
    for (const [text, reason] of bad) expect(() => parsePolicy(text, 'x'), text).toThrow(reason);
  });

  it('matches MX names exactly or by one leftmost wildcard label', () => {
    const policy = { mx: ['mx.example.org', '*.example.net'] };
    expect(mxMatchesPolicy('MX.example.org.', policy)).toBe(true);
    expect(mxMatchesPolicy('a.example.net', policy)).toBe(true);
    expect(mxMatchesPolicy('a.b.example.net', policy)).toBe(false);
    expect(mxMatchesPolicy('example.net', policy)).toBe(false);
    expect(mxMatchesPolicy('mx.example.org.evil.test', policy)).toBe(false);
  });

  it('reads the id of the one STSv1 TXT record', () => {
    expect(policyId(['v=spf1 -all', 'v=STSv1; id=20260101T000000'])).toBe('20260101T000000');
    expect(policyId(['v=spf1 -all'])).toBeNull();
    expect(() => policyId(['v=STSv1; id=a', 'v=STSv1; id=b'])).toThrow(/more than one/);
    expect(() => policyId(['v=STSv1; id=has-dash'])).toThrow(/no valid id/);
    expect(() => policyId(['v=STSv1;'])).toThrow(/no valid id/);
  });
});
