/**
 * `recrypt start` with `proxyProtocol` on the smtp, imap and admin groups (docs/
 * configuration.md "PROXY protocol"): each of those listeners answers a connection that
 * starts with a header from the trusted balancer (127.0.0.1) and closes one without,
 * unanswered; the operator listener, without the option, is unchanged. The behaviour
 * behind each listener is tested in test/smtp, test/imap and test/admin.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { headerInFirstWrite, proxyV1, proxyV2 } from '../helpers/proxy-protocol-client.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-proxy-protocol-');
let ports: GatewayPorts;
let gateway: Spawned | undefined;

beforeAll(async () => {
  ports = await freeGatewayPorts();
  const proxy = 'proxyProtocol: { trusted: ["127.0.0.1"] }';
  const configFile = writeGatewayConfig(tmp.path, ports, [
    `smtp: { host: 127.0.0.1, port: ${ports.smtp}, ${proxy} }`,
    `imap: { host: 127.0.0.1, port: ${ports.imap}, starttlsPort: ${ports.starttls}, ${proxy} }`,
    `admin: { port: ${ports.admin}, ${proxy} }`,
  ]);
  gateway = await startGatewayProcess(configFile, ports);
}, 180_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

/** The first bytes the listener sends after `bytes`, or '' when it closes first. */
async function firstReply(socket: Socket | ReturnType<typeof tlsConnect>): Promise<string> {
  socket.on('error', () => undefined);
  return new Promise((resolve) => {
    socket.once('data', (chunk: Buffer) => {
      resolve(chunk.toString('latin1'));
      socket.destroy();
    });
    socket.once('close', () => resolve(''));
  });
}

async function plain(port: number, bytes: Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const reply = firstReply(socket);
  await once(socket, 'connect');
  socket.write(bytes);
  return reply;
}

function curl(port: number, extra: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(requireBinary('curl'), [
      '-s',
      '-k',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '60',
      ...extra,
      `https://127.0.0.1:${port}/healthz`,
    ]);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out.trim()));
  });
}

describe('recrypt start with the PROXY protocol', () => {
  it('MX: greets after a header, closes without one', async () => {
    expect(await plain(ports.smtp, proxyV1('203.0.113.30', 1))).toMatch(/^220 /);
    expect(await plain(ports.smtp, Buffer.from('EHLO client.example\r\n'))).toBe('');
  });

  it('IMAP: greets after a header on both ports, closes without one', async () => {
    expect(await plain(ports.starttls, proxyV2('203.0.113.31', 2))).toMatch(/^\* OK /);
    const raw = connect(ports.imap, '127.0.0.1');
    await once(raw, 'connect');
    const secure = tlsConnect({
      socket: headerInFirstWrite(raw, proxyV1('203.0.113.32', 3)),
      rejectUnauthorized: false,
    });
    expect(await firstReply(secure)).toMatch(/^\* OK /);
    expect(await plain(ports.starttls, Buffer.from('a CAPABILITY\r\n'))).toBe('');
  });

  it('HTTPS: the public listener needs the header, the operator listener does not', async () => {
    expect(await curl(ports.admin, ['--haproxy-protocol'])).toBe('200');
    expect(await curl(ports.admin, [])).toBe('000');
    expect(await curl(ports.operator, [])).toBe('200');
    expect(gateway!.output()).toContain('PROXY protocol: no valid header, connection refused');
  });
});
