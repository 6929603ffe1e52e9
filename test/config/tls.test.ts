import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { statSync } from 'node:fs';
import { connect, createServer } from 'node:tls';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('ensureTlsMaterial', () => {
  it('generates a self-signed certificate once, then reuses it', async () => {
    const first = await ensureTlsMaterial(dir.path);
    expect(first.generated).toBe(true);
    expect(statSync(first.keyFile).mode & 0o777).toBe(0o600);
    const second = await ensureTlsMaterial(dir.path);
    expect(second.generated).toBe(false);
    expect(second.cert).toBe(first.cert);

    const openssl = requireBinary('openssl');
    const text = execFileSync(openssl, ['x509', '-noout', '-text', '-in', first.certFile], {
      encoding: 'utf8',
    });
    expect(text).toMatch(/DNS:localhost/);
    expect(text).toMatch(/IP Address:127\.0\.0\.1/);
    expect(text).toMatch(/TLS Web Server Authentication/);
  });

  it('serves TLS that a client verifying against it accepts', async () => {
    const tls = await ensureTlsMaterial(dir.path);
    const server = createServer({ key: tls.key, cert: tls.cert }, (socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: tls.cert, servername: 'localhost' });
        let data = '';
        socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(reply).toBe('hello');
    } finally {
      server.close();
    }
  });

  it('re-issues the generated certificate for the same key shortly before it expires', async () => {
    const own = tempDir();
    try {
      const day = 24 * 3600 * 1000;
      const start = new Date('2026-01-01T00:00:00Z');
      const first = await ensureTlsMaterial(own.path, undefined, start, 'mx.renew.example');
      const pin = (pem: string) =>
        new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
      // Months before its expiry (825 days): kept as it is.
      const early = await ensureTlsMaterial(own.path, undefined, new Date(+start + 800 * day));
      expect(early.renewed).toBeUndefined();
      expect(early.cert).toBe(first.cert);
      // Within the last week: a new certificate, the same key, valid from then on.
      const late = new Date(+start + 820 * day);
      const renewed = await ensureTlsMaterial(own.path, undefined, late, 'mx.renew.example');
      expect(renewed.renewed).toBe(true);
      expect(renewed.cert).not.toBe(first.cert);
      expect(renewed.key).toBe(first.key);
      expect(pin(renewed.cert)).toBe(pin(first.cert));
      const certificate = new X509Certificate(renewed.cert);
      expect(Date.parse(certificate.validTo)).toBeGreaterThan(+late + 800 * day);
      expect(certificate.checkPrivateKey(createPrivateKey(renewed.key))).toBe(true);
      expect(certificate.subjectAltName).toContain('DNS:mx.renew.example');
      // Written: the next start reads the renewed one and keeps it.
      const again = await ensureTlsMaterial(own.path, undefined, late);
      expect(again.cert).toBe(renewed.cert);
      expect(again.renewed).toBeUndefined();
    } finally {
      own.remove();
    }
  });

  it('reads configured files and names a missing one', async () => {
    const tls = await ensureTlsMaterial(dir.path);
    const configured = await ensureTlsMaterial('/unused', { key: tls.keyFile, cert: tls.certFile });
    expect(configured.generated).toBe(false);
    await expect(
      ensureTlsMaterial('/unused', { key: '/nonexistent/key.pem', cert: tls.certFile }),
    ).rejects.toThrow(/ENOENT.*nonexistent\/key\.pem/);
  });
});
