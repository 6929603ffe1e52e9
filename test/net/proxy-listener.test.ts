/**
 * The PROXY protocol gate on real listeners (plain TCP, TLS, HTTPS) with real sockets:
 * the server behind sees the header's address, bytes sent with the header reach it, and
 * untrusted peers, missing, malformed, oversized or late headers close the connection
 * before the server sees it, with a log line.
 */
import { once } from 'node:events';
import { request } from 'node:https';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { createServer as createHttpsServer } from 'node:https';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireProxyProtocol, trustedPeers } from '../../src/net/proxy-listener.js';
import { makeServerCert } from '../helpers/store-tls.js';
import { tempDir } from '../helpers/tmp.js';
import { headerInFirstWrite, proxyV1, proxyV2 } from '../helpers/proxy-protocol-client.js';

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  }),
);

const dir = tempDir('proxy-listener-');
let tls: { key: string; cert: string };
const servers: Server[] = [];

beforeAll(() => {
  tls = makeServerCert(dir.path);
});
afterAll(async () => {
  for (const server of servers) server.close();
  dir.remove();
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A plain server that answers each connection with "<address> <port> <first line>". */
async function echoServer(trusted: string[], headerTimeoutMs?: number): Promise<number> {
  const server = createServer((socket) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n'))
        socket.end(`${socket.remoteAddress} ${socket.remotePort} ${text.split('\n')[0]}\n`);
    });
  });
  requireProxyProtocol(
    server,
    { trusted, ...(headerTimeoutMs === undefined ? {} : { headerTimeoutMs }) },
    { logger, listener: 'test' },
  );
  return listen(server);
}

/** Sends `bytes` in one write (or in the given pieces), returns all received until close. */
async function exchange(port: number, ...pieces: Buffer[]): Promise<string> {
  const socket: Socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  for (const piece of pieces) {
    if (socket.destroyed) break;
    socket.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await closed;
  return received;
}

const logged = (message: string): Record<string, unknown>[] =>
  lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith(message));

describe('PROXY protocol listener', () => {
  it('gives the server the v1 header address; bytes in the same write follow', async () => {
    const port = await echoServer(['127.0.0.0/8']);
    const header = proxyV1('203.0.113.7', 40001);
    expect(await exchange(port, Buffer.concat([header, Buffer.from('hello\n')]))).toBe(
      '203.0.113.7 40001 hello\n',
    );
  });

  it('gives the server the v2 header address, header split over several writes', async () => {
    const port = await echoServer(['::1', '127.0.0.1/32']);
    const header = proxyV2('2001:db8::9', 40002);
    expect(
      await exchange(
        port,
        header.subarray(0, 5),
        header.subarray(5, 20),
        header.subarray(20),
        Buffer.from('x\n'),
      ),
    ).toBe('2001:db8::9 40002 x\n');
  });

  it('keeps the balancer as the peer for a v2 LOCAL health check', async () => {
    const port = await echoServer(['127.0.0.1']);
    const local = Buffer.concat([
      proxyV2('198.51.100.1', 1).subarray(0, 12),
      Buffer.from([0x20, 0, 0, 0]),
    ]);
    expect(await exchange(port, Buffer.concat([local, Buffer.from('ping\n')]))).toMatch(
      /^127\.0\.0\.1 \d+ ping\n$/,
    );
  });

  it('refuses a peer that is not a trusted balancer, header or not, and logs it', async () => {
    const port = await echoServer(['10.0.0.0/8', '2001:db8::/32']);
    const before = logged('PROXY protocol: peer is not a trusted balancer').length;
    expect(
      await exchange(port, Buffer.concat([proxyV1('203.0.113.7', 1), Buffer.from('a\n')])),
    ).toBe('');
    expect(await exchange(port, Buffer.from('a\n'))).toBe('');
    const refusals = logged('PROXY protocol: peer is not a trusted balancer');
    expect(refusals.length).toBe(before + 2);
    expect(refusals.at(-1)).toMatchObject({ ip: '127.0.0.1', listener: 'test' });
  });

  it.each([
    ['no header from a trusted balancer', [Buffer.from('EHLO client\r\n')]],
    ['a malformed v1 header', [Buffer.from('PROXY TCP4 1.2.3.4 nope 1 2\r\nhi\n')]],
    ['a v1 line past 107 bytes', [Buffer.from(`PROXY UNKNOWN ${'a'.repeat(120)}`)]],
    [
      'a v2 length over the cap',
      [Buffer.concat([proxyV2('1.2.3.4', 1).subarray(0, 14), Buffer.from([0xff, 0xff])])],
    ],
    ['a header cut short by the peer', [proxyV2('1.2.3.4', 1).subarray(0, 20)]],
  ])('closes the connection on %s, before the server sees it', async (_name, pieces) => {
    const port = await echoServer(['127.0.0.1']);
    const before = logged('PROXY protocol: no valid header').length;
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.on('error', () => undefined);
    for (const piece of pieces) socket.write(piece);
    // A truncated header: the peer gives up and closes its side.
    if (_name.includes('cut short')) socket.end();
    await once(socket, 'close');
    expect(received).toBe('');
    expect(logged('PROXY protocol: no valid header').length).toBe(before + 1);
  });

  it('closes a trusted connection that sends nothing once the header time is up', async () => {
    const port = await echoServer(['127.0.0.1'], 300);
    expect(await exchange(port)).toBe('');
    expect(logged('PROXY protocol: no valid header').at(-1)).toMatchObject({
      reason: 'no complete header within 300 ms',
    });
  });

  it('reads the header before TLS: a v2 header sent with the ClientHello, TLS socket sees it', async () => {
    const server = createTlsServer({ key: tls.key, cert: tls.cert }, (socket) =>
      socket.end(`${socket.remoteAddress} ${socket.remotePort}\n`),
    );
    requireProxyProtocol(server, { trusted: ['127.0.0.1'] }, { logger, listener: 'tls' });
    const port = await listen(server);
    const raw = connect(port, '127.0.0.1');
    await once(raw, 'connect');
    const secure = tlsConnect({
      socket: headerInFirstWrite(raw, proxyV2('198.51.100.23', 50123)),
      rejectUnauthorized: false,
    });
    let text = '';
    secure.on('data', (chunk: Buffer) => (text += chunk.toString()));
    await once(secure, 'end');
    expect(text).toBe('198.51.100.23 50123\n');
    secure.destroy();
  });

  it('serves HTTPS with the client address from a v1 header', async () => {
    const server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) =>
      res.end(req.socket.remoteAddress),
    );
    requireProxyProtocol(server, { trusted: ['127.0.0.1'] }, { logger, listener: 'https' });
    const port = await listen(server);
    const raw = connect(port, '127.0.0.1');
    await once(raw, 'connect');
    const secure = tlsConnect({
      socket: headerInFirstWrite(raw, proxyV1('192.0.2.77', 1234)),
      rejectUnauthorized: false,
    });
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          rejectUnauthorized: false,
          createConnection: () => secure,
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe('192.0.2.77');
  });

  it('refuses a trusted list entry that is no address or range', () => {
    expect(() => trustedPeers(['10.0.0.0/33'])).toThrow(/10\.0\.0\.0\/33/);
    expect(() => trustedPeers(['balancer.example'])).toThrow(RangeError);
    expect(trustedPeers(['10.0.0.0/8', 'fd00::/8', '192.0.2.1']).check('10.9.9.9', 'ipv4')).toBe(
      true,
    );
  });
});
