/**
 * The trace headers the MX prepends: a client-chosen HELO cannot inject header lines,
 * "for" appears only for one recipient, and mailauth reads the body only when a DKIM
 * signature needs it.
 */
import { describe, expect, it } from 'vitest';
import { authenticationInput } from '../../src/smtp/auth-input.js';
import { inLineEndingsOf, receivedHeader } from '../../src/smtp/trace-headers.js';

const base = {
  hostname: 'mx.gateway.test',
  sessionId: 'abc123',
  remoteAddress: '192.0.2.7',
  helo: 'client.example',
  mailFrom: 'someone@sender.example',
  recipients: ['alice@gateway.test'],
  secure: true,
  smtpUtf8: false,
  now: new Date(Date.UTC(2026, 10, 29, 5, 0, 0)),
};

describe('receivedHeader', () => {
  it('is one folded field ending in CRLF', () => {
    expect(receivedHeader(base)).toBe(
      'Received: from client.example ([192.0.2.7])\r\n\tby mx.gateway.test with ESMTPS id abc123\r\n\tfor <alice@gateway.test>;\r\n\tSun, 29 Nov 2026 05:00:00 +0000\r\n',
    );
  });

  it('a HELO with CR, LF or spaces cannot add header lines', () => {
    const header = receivedHeader({ ...base, helo: 'evil\r\nX-Injected: yes \u00e9' });
    expect(header).not.toMatch(/\r\nX-Injected/);
    expect(
      header.split('\r\n').filter((line) => line !== '' && !line.startsWith('\t')),
    ).toHaveLength(1);
  });

  it('no "for" with several recipients (no Bcc leak); UTF8SMTPS for SMTPUTF8; IPv6 tagged', () => {
    const header = receivedHeader({
      ...base,
      recipients: ['a@gateway.test', 'b@gateway.test'],
      smtpUtf8: true,
      remoteAddress: '2001:db8::1',
    });
    expect(header).not.toContain('for <');
    expect(header).toContain('with UTF8SMTPS');
    expect(header).toContain('[IPv6:2001:db8::1]');
  });
});

describe('authenticationInput', () => {
  const body = Buffer.from('x'.repeat(200_000));
  it('unsigned mail: only the header section', () => {
    const head = Buffer.from('From: a@b.example\r\nSubject: s\r\n\r\n');
    const parts = authenticationInput(Buffer.concat([head, body]));
    expect(Buffer.concat(parts).equals(head)).toBe(true);
  });

  it('DKIM-signed mail, or mail without a header/body separator: everything', () => {
    const signed = Buffer.concat([
      Buffer.from('DKIM-Signature: v=1; d=b.example\r\nFrom: a@b.example\r\n\r\n'),
      body,
    ]);
    expect(Buffer.concat(authenticationInput(signed)).equals(signed)).toBe(true);
    const noSeparator = Buffer.from('From: a@b.example\r\nSubject: only headers\r\n');
    expect(Buffer.concat(authenticationInput(noSeparator)).equals(noSeparator)).toBe(true);
  });
});

describe('inLineEndingsOf', () => {
  const fields = 'Received: from a\r\n\tby b;\r\nAuthentication-Results: b;\r\n spf=none\r\n';

  it('keeps CRLF for a CRLF message, and for one with no line end at all', () => {
    expect(inLineEndingsOf(fields, Buffer.from('From: x\r\n\r\nbody\n'))).toBe(fields);
    expect(inLineEndingsOf(fields, Buffer.from('no line end'))).toBe(fields);
  });

  it('writes LF for a message whose first line ends in a bare LF (even an empty first line)', () => {
    const lf = 'Received: from a\n\tby b;\nAuthentication-Results: b;\n spf=none\n';
    expect(inLineEndingsOf(fields, Buffer.from('From: x\nTo: y\n\nbody\r\n'))).toBe(lf);
    expect(inLineEndingsOf(fields, Buffer.from('\nbody'))).toBe(lf);
  });
});
