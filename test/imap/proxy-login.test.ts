/**
 * Device login, throttling, TLS policy, revocation and the upstream's absence, on the
 * wire, against a real Dovecot.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createImapProxyMetrics, startImapProxy, type ImapProxy } from '../../src/imap/index.js';
import { LoginThrottle } from '../../src/imap/throttle.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { tempDir } from '../helpers/tmp.js';
import { freePort } from '../helpers/ports.js';
import { STORE_KINDS, startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

describe.each(STORE_KINDS)('IMAP proxy login (%s upstream)', (kind) => {
  let h: ProxyHarness;
  const logs: string[] = [];
  const registry = new Registry();
  const extraProxies: ImapProxy[] = [];
  const wires: Wire[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logs.push(chunk.toString());
        callback();
      },
    });
    h = await startProxyHarness(
      {
        logger: pino({ level: 'debug' }, sink),
        metrics: createImapProxyMetrics(registry),
        // Each test's failures stay below the backoff; the throttle has its own test.
        throttle: { freeFailures: 100 },
      },
      2,
      kind,
    );
  });
  // Dovecot allows 10 connections per user and IP (mail_max_userip_connections).
  afterEach(() => {
    for (const wire of wires.splice(0)) wire.close();
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    for (const proxy of extraProxies) await proxy.close();
    await h?.stop();
  });

  async function wire(port = h.proxy.ports.starttls!, tls = false): Promise<Wire> {
    const w = await openWire(port, tls);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    return w;
  }

  const plain = (authzid: string, user: string, password: string): string =>
    Buffer.from(`${authzid}\0${user}\0${password}`).toString('base64');

  it('LOGIN, AUTHENTICATE PLAIN with SASL-IR, the continuation form and literals all log a device in', async () => {
    const device = h.user.devices[0]!;
    const a = await wire();
    a.send(`a1 LOGIN ${h.user.address} "${device.password}"\r\n`);
    expect(await a.waitFor(/\na1 (OK|NO).*\r\n/)).toMatch(/a1 OK \[CAPABILITY [^\]]*\] Logged in/);
    const b = await wire(h.proxy.ports.tls!, true);
    b.send(`b1 AUTHENTICATE PLAIN ${plain('', h.user.address, device.password)}\r\n`);
    expect(await b.waitFor(/\nb1 (OK|NO).*\r\n/)).toMatch(/b1 OK /);
    const c = await wire();
    c.send('c1 AUTHENTICATE PLAIN\r\n');
    await c.waitFor(/\+ \r\n/);
    c.send(`${plain(h.user.address, h.user.address, device.password)}\r\n`);
    expect(await c.waitFor(/\nc1 (OK|NO).*\r\n/)).toMatch(/c1 OK /);
    const d = await wire();
    d.send(`d1 LOGIN {${h.user.address.length}}\r\n`);
    await d.waitFor(/\+ .*\r\n/);
    d.send(`${h.user.address} {${device.password.length}+}\r\n${device.password}\r\n`);
    expect(await d.waitFor(/\nd1 (OK|NO).*\r\n/)).toMatch(/d1 OK /);
    d.send('d2 SELECT INBOX\r\n');
    expect(await d.waitFor(/\nd2 (OK|NO|BAD).*\r\n/)).toMatch(/d2 OK /);
  });

  it('answers an unknown account and a wrong password identically, and never logs the password', async () => {
    const w = await wire();
    const secret = 'not-the-password-1234';
    w.send(`x1 LOGIN nobody@example.org ${secret}\r\n`);
    await w.waitFor(/\nx1 .*\r\n/);
    w.send(`x2 LOGIN ${h.user.address} ${secret}\r\n`);
    const text = await w.waitFor(/\nx2 .*\r\n/);
    const replies = text
      .split('\r\n')
      .filter((line) => /^x[12] /.test(line))
      .map((line) => line.slice(3));
    expect(replies).toEqual([
      'NO [AUTHENTICATIONFAILED] Authentication failed',
      'NO [AUTHENTICATIONFAILED] Authentication failed',
    ]);
    w.send(`x3 AUTHENTICATE PLAIN ${plain(h.user.address, h.user.address, secret)}\r\n`);
    expect(await w.waitFor(/\* BYE .*\r\n/)).toMatch(/x3 NO \[AUTHENTICATIONFAILED\]/);
    // A device may not act for another user.
    const v = await wire();
    v.send(
      `v1 AUTHENTICATE PLAIN ${plain('bob@example.org', h.user.address, h.user.devices[0]!.password)}\r\n`,
    );
    expect(await v.waitFor(/\nv1 .*\r\n/)).toMatch(/v1 NO \[AUTHENTICATIONFAILED\]/);
    const all = logs.join('');
    expect(all).not.toContain(secret);
    for (const device of h.user.devices) expect(all).not.toContain(device.password);
    expect(await registry.getSingleMetricAsString('imap_proxy_logins_total')).toMatch(
      /result="failed"} [1-9]/,
    );
  });

  it('a device revoked while connected gets BYE and cannot log in again', async () => {
    const device = h.user.devices[1]!;
    const w = await wire();
    w.send(`r1 LOGIN ${h.user.address} ${device.password}\r\nr2 SELECT INBOX\r\nr3 IDLE\r\n`);
    await w.waitFor(/\n\+ .*\r\n/);
    h.directory.revoke(h.user.address, device.deviceId);
    // The revocation is pushed to the session: BYE arrives and the connection closes.
    await w.waitFor(/\* BYE Device access revoked\r\n/, 2_000);
    await w.closed();
    const again = await wire();
    again.send(`r4 LOGIN ${h.user.address} ${device.password}\r\n`);
    expect(await again.waitFor(/\nr4 .*\r\n/)).toMatch(/r4 NO \[AUTHENTICATIONFAILED\]/);
    // The other device is unaffected.
    const other = await wire();
    other.send(`r5 LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
    expect(await other.waitFor(/\nr5 .*\r\n/)).toMatch(/r5 OK/);
  });

  it('without plaintext on loopback: LOGINDISABLED until STARTTLS, then login works', async () => {
    const strict = await startImapProxy({
      host: '127.0.0.1',
      starttlsPort: 0,
      tls: { key: h.tlsKey, cert: h.tlsCert },
      upstream: { host: '127.0.0.1', port: h.upstream.imapPort, tls: false },
      master: { user: h.upstream.masterUser, password: h.upstream.masterPassword },
      directory: h.directory,
    });
    extraProxies.push(strict);
    const w = await wire(strict.ports.starttls!);
    expect(w.received()).toMatch(/STARTTLS LOGINDISABLED/);
    expect(w.received()).not.toMatch(/AUTH=PLAIN/);
    w.send(`p1 LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
    expect(await w.waitFor(/\np1 .*\r\n/)).toMatch(/p1 NO \[PRIVACYREQUIRED\]/);
    w.send('p2 STARTTLS\r\n');
    await w.waitFor(/\np2 OK .*\r\n/);
    const { connect } = await import('node:tls');
    const secured = connect({ socket: w.socket, rejectUnauthorized: false });
    let text = '';
    secured.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    await new Promise((resolve) => secured.once('secureConnect', resolve));
    secured.write('p3 CAPABILITY\r\n');
    await until(() => /p3 OK/.test(text));
    expect(text).toMatch(/AUTH=PLAIN/);
    expect(text).not.toMatch(/LOGINDISABLED|STARTTLS/);
    secured.write(`p4 LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
    await until(() => /p4 (OK|NO)/.test(text));
    expect(text).toMatch(/p4 OK/);
    secured.destroy();
  });

  it('setTls serves a new certificate to new connections (SIGHUP reload)', async () => {
    const { connect } = await import('node:tls');
    const fingerprint = async (port: number): Promise<string> => {
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      const value = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      return value;
    };
    const first = await fingerprint(h.proxy.ports.tls!);
    const other = tempDir('imap-tls-');
    try {
      const next = await ensureTlsMaterial(other.path);
      h.proxy.setTls({ key: next.key, cert: next.cert });
      const second = await fingerprint(h.proxy.ports.tls!);
      expect(second).not.toBe(first);
      h.proxy.setTls({ key: h.tlsKey, cert: h.tlsCert });
      expect(await fingerprint(h.proxy.ports.tls!)).toBe(first);
    } finally {
      other.remove();
    }
  });

  it('NO [UNAVAILABLE] when the mail store or the key store cannot be reached', async () => {
    const closedPort = await freePort();
    const orphan = await startImapProxy({
      host: '127.0.0.1',
      starttlsPort: 0,
      tls: { key: h.tlsKey, cert: h.tlsCert },
      upstream: { host: '127.0.0.1', port: closedPort, tls: false },
      master: { user: 'gateway', password: 'x' },
      directory: h.directory,
      allowPlaintextOnLoopback: true,
    });
    extraProxies.push(orphan);
    const w = await wire(orphan.ports.starttls!);
    w.send(`u1 LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
    expect(await w.waitFor(/\nu1 .*\r\n/)).toMatch(/u1 NO \[UNAVAILABLE\]/);
    h.directory.down = true;
    try {
      const k = await wire();
      k.send(`k1 LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
      expect(await k.waitFor(/\nk1 .*\r\n/)).toMatch(/k1 NO \[UNAVAILABLE\]/);
    } finally {
      h.directory.down = false;
    }
  });

  it('pre-auth garbage gets BAD, too much of it BYE, and the proxy keeps serving', async () => {
    const w = await wire();
    w.send('\r\n');
    w.send('* FETCH 1\r\n');
    w.send(Buffer.from([0x00, 0xff, 0x0d, 0x0a]));
    w.send('a SELECT INBOX\r\n');
    w.send('b LOGIN "unterminated\r\n');
    const text = await w.waitFor(/\nb BAD .*\r\n/);
    expect(text).toMatch(/a BAD /);
    for (let i = 0; i < 10; i++) w.send(`g${i} XYZZY\r\n`);
    await w.waitFor(/\* BYE .*\r\n/);
    await w.closed();
    const big = await wire();
    big.send(`l1 LOGIN {100000}\r\n`);
    await big.waitFor(/\* BYE .*\r\n/);
    const ok = await wire();
    ok.send('n1 NOOP\r\n');
    expect(await ok.waitFor(/\nn1 .*\r\n/)).toMatch(/n1 OK/);
  });
});

describe('login throttle', () => {
  it('backs off per IP and per account after the free failures, and forgets after the window', () => {
    let now = 0;
    const throttle = new LoginThrottle({
      freeFailures: 2,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      windowMs: 60_000,
      now: () => now,
    });
    expect(throttle.delayMs('1.2.3.4', 'a@x')).toBe(0);
    throttle.recordFailure('1.2.3.4', 'a@x');
    throttle.recordFailure('1.2.3.4', 'a@x');
    expect(throttle.delayMs('1.2.3.4', 'b@x')).toBe(100); // same IP, other account
    expect(throttle.delayMs('5.6.7.8', 'a@x')).toBe(100); // other IP, same account
    expect(throttle.delayMs('5.6.7.8', 'b@x')).toBe(0);
    for (let i = 0; i < 10; i++) throttle.recordFailure('1.2.3.4', 'a@x');
    expect(throttle.delayMs('1.2.3.4', 'a@x')).toBe(1000);
    throttle.recordSuccess('a@x');
    expect(throttle.delayMs('5.6.7.8', 'a@x')).toBe(0);
    expect(throttle.delayMs('1.2.3.4', 'c@x')).toBe(1000);
    now += 60_001;
    expect(throttle.delayMs('1.2.3.4', 'c@x')).toBe(0);
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++)
    await new Promise((resolve) => setTimeout(resolve, 25));
  if (!condition()) throw new Error('condition not met');
}
