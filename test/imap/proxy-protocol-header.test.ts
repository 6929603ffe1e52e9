/**
 * The IMAP proxy behind a load balancer that speaks the PROXY protocol (imap.proxyProtocol),
 * on real sockets: the test plays the balancer on 127.0.0.1. The per-IP connection cap,
 * the login log lines and the loopback plaintext exception see the header's client, on
 * the STARTTLS port (v1) and over implicit TLS (v2 sent with the ClientHello, read before
 * TLS). A peer that is not a trusted balancer (127.0.0.2), a balancer without a header
 * and malformed headers get nothing, not even the greeting, and are logged.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { headerInFirstWrite, proxyV1, proxyV2 } from '../helpers/proxy-protocol-client.js';

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  }),
);
const logged = (msg: string): Record<string, unknown>[] => lines.filter((l) => l.msg === msg);

/** The TCP socket under a client made by viaBalancer (for STARTTLS). */
const sockets = new WeakMap<Client, Socket>();

interface Client {
  received(): string;
  waitFor(pattern: RegExp): Promise<string>;
  send(text: string): void;
  closed: Promise<unknown>;
  close(): void;
}

function client(socket: NodeJS.ReadWriteStream & { destroy(): void }): Client {
  let text = '';
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const wake of waiters) wake();
  });
  socket.on('error', () => undefined);
  // Not events.once: it rejects on 'error', and a refused TLS client errors as it closes.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => {
    for (const wake of waiters) wake();
  });
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  return {
    received: () => text,
    send: (data) => void socket.write(data),
    closed,
    close: () => socket.destroy(),
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => finish(new Error(`timed out on ${pattern}: ${text}`)),
          30_000,
        );
        const check = (): void => {
          if (pattern.test(text)) finish();
          else if (isClosed) finish(new Error(`closed before ${pattern}: ${text}`));
        };
        const finish = (error?: Error): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (error === undefined) resolve(text);
          else reject(error);
        };
        waiters.add(check);
        check();
      }),
  };
}

describe('IMAP proxy with the PROXY protocol', () => {
  let h: ProxyHarness;
  const open: Client[] = [];

  beforeAll(async () => {
    h = await startProxyHarness(
      {
        proxyProtocol: { trusted: ['127.0.0.1'] },
        limits: { maxConnectionsPerIp: 2 },
        logger,
      },
      1,
      'embedded',
    );
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** STARTTLS port: the balancer's connection, the header, then the client's bytes. */
  async function viaBalancer(header: Buffer, from = '127.0.0.1'): Promise<Client> {
    const socket = connect({
      host: '127.0.0.1',
      port: h.proxy.ports.starttls!,
      localAddress: from,
    });
    const c = client(socket);
    sockets.set(c, socket);
    open.push(c);
    await once(socket, 'connect');
    socket.write(header);
    return c;
  }

  it('v1 on the STARTTLS port: the per-IP cap counts the client the header names', async () => {
    const a = await viaBalancer(proxyV1('203.0.113.10', 1001));
    const b = await viaBalancer(proxyV1('203.0.113.10', 1002));
    await a.waitFor(/^\* OK /);
    await b.waitFor(/^\* OK /);
    // A third from that client is over maxConnectionsPerIp (2), though all share one peer.
    const c = await viaBalancer(proxyV1('203.0.113.10', 1003));
    expect(await c.waitFor(/\r\n/)).toBe(
      '* BYE [UNAVAILABLE] Too many connections from your address\r\n',
    );
    const refusal = logged('connection over the limit').at(-1);
    expect(refusal).toMatchObject({ ip: '203.0.113.10', reason: 'ip-full' });
    // Another client through the same balancer gets in.
    const d = await viaBalancer(proxyV1('203.0.113.11', 1004));
    expect(await d.waitFor(/\r\n/)).toMatch(/^\* OK /);
  });

  it('a remote client behind a balancer on loopback gets no plaintext login; its failed login is logged by its address', async () => {
    const remote = await viaBalancer(proxyV1('198.51.100.40', 2000));
    await remote.waitFor(/^\* OK /);
    remote.send(`a LOGIN ${h.user.address} wrong\r\n`);
    expect(await remote.waitFor(/\r\na [A-Z]+/)).toMatch(/\r\na NO \[PRIVACYREQUIRED\]/);

    // Through STARTTLS the login is allowed; a wrong password is logged with the client.
    remote.send('b STARTTLS\r\n');
    await remote.waitFor(/\r\nb OK[^\r\n]*\r\n/);
    const before = logged('device login failed').length;
    const secure = tlsConnect({ socket: sockets.get(remote)!, rejectUnauthorized: false });
    const tls = client(secure);
    open.push(tls);
    await once(secure, 'secureConnect');
    tls.send(`c LOGIN ${h.user.address} wrong-password\r\n`);
    expect(await tls.waitFor(/\r?\n?c NO[^\r\n]*\r\n/)).toMatch(/c NO/);
    const failures = logged('device login failed');
    expect(failures.length).toBe(before + 1);
    expect(failures.at(-1)).toMatchObject({ ip: '198.51.100.40' });
  });

  it('v2 with the ClientHello on the implicit-TLS port: a session of the header client, login works', async () => {
    const raw = connect(h.proxy.ports.tls!, '127.0.0.1');
    await once(raw, 'connect');
    const secure = tlsConnect({
      socket: headerInFirstWrite(raw, proxyV2('2001:db8::77', 3000, '2001:db8::1', 993)),
      rejectUnauthorized: false,
    });
    const c = client(secure);
    open.push(c);
    await c.waitFor(/^\* OK /);
    const device = h.user.devices[0]!;
    c.send(`a LOGIN ${h.user.address} ${device.password}\r\n`);
    await c.waitFor(/\r\na OK[^\r\n]*\r\n/);
    expect(logged('logged in').at(-1)).toMatchObject({ ip: '2001:db8::77' });
  });

  it('refuses a peer that is not a trusted balancer, with a header or without, before the greeting', async () => {
    const before = logged(
      'PROXY protocol: peer is not a trusted balancer, connection refused',
    ).length;
    const withHeader = await viaBalancer(proxyV1('203.0.113.12', 1), '127.0.0.2');
    await withHeader.closed;
    expect(withHeader.received()).toBe('');
    const tls = tlsConnect({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      rejectUnauthorized: false,
      // Typed on net's options, which tls.connect passes on.
      ...{ localAddress: '127.0.0.2' },
    });
    const direct = client(tls);
    await direct.closed;
    expect(direct.received()).toBe('');
    const refusals = logged('PROXY protocol: peer is not a trusted balancer, connection refused');
    expect(refusals.length).toBe(before + 2);
    expect(refusals.at(-1)).toMatchObject({ ip: '127.0.0.2' });
  });

  it('closes a balancer connection without a header or with a bad one, unanswered, and stays up', async () => {
    const before = logged('PROXY protocol: no valid header, connection refused').length;
    for (const bytes of [
      Buffer.from('a CAPABILITY\r\n'),
      Buffer.from('PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'),
      Buffer.concat([proxyV2('1.2.3.4', 1).subarray(0, 14), Buffer.from([0x40, 0x00])]),
    ]) {
      const c = await viaBalancer(bytes);
      await c.closed;
      expect(c.received()).toBe('');
    }
    expect(logged('PROXY protocol: no valid header, connection refused').length).toBe(before + 3);
    // A TLS client that sends its ClientHello with no header at all: no handshake.
    const tls = tlsConnect({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      rejectUnauthorized: false,
    });
    const noHeader = client(tls);
    await noHeader.closed;
    expect(noHeader.received()).toBe('');
    const ok = await viaBalancer(proxyV1('203.0.113.13', 1));
    expect(await ok.waitFor(/\r\n/)).toMatch(/^\* OK /);
  });
});
