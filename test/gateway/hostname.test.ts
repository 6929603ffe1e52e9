/**
 * The configured public `hostname` (not the machine's name, which in a container is its
 * id) is what the real `recrypt start` shows the world: the SMTP greeting and EHLO, the
 * self-signed certificate, and the URL `recrypt user add` prints for the owner.
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { runCli } from '../helpers/cli-run.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'mx.hostname-test.example';
const tmp = tempDir('recrypt-hostname-');
const configFile = join(tmp.path, 'recrypt.yaml');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
let ports: GatewayPorts;
let gateway: Spawned | undefined;

/** The greeting and the EHLO reply, read off a raw socket. */
function smtpHello(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (/^220 /m.test(text) && !text.includes('EHLO-SENT')) {
        text += 'EHLO-SENT\n';
        socket.write('EHLO client.example\r\n');
      }
      if (/^250 /m.test(text)) {
        socket.end('QUIT\r\n');
        resolve(text);
      }
    });
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  requireBinary('openssl');
  requireBinary('curl');
  ports = await freeGatewayPorts();
  writeGatewayConfig(tmp.path, ports, [`hostname: ${NAME}`]);
  gateway = await startGatewayProcess(configFile, ports);
}, 120_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('the configured hostname', () => {
  it('is the name in the SMTP greeting and the EHLO reply', async () => {
    expect(NAME).not.toBe(hostname());
    const hello = await smtpHello(ports.smtp);
    expect(hello).toMatch(new RegExp(`^220 ${NAME.replace(/\./g, '\\.')} `, 'm'));
    expect(hello).toMatch(new RegExp(`^250-${NAME.replace(/\./g, '\\.')} `, 'm'));
  });

  it('is a name of the self-signed certificate', () => {
    const san = execFileSync(
      'openssl',
      ['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName'],
      {
        encoding: 'utf8',
      },
    );
    expect(san).toContain(`DNS:${NAME}`);
  });

  it('is the host of the URL user add prints for the owner', async () => {
    const added = await runCli(['user', 'add', 'alice@example.org', '--config', configFile], {
      cwd: tmp.path,
    });
    expect(added.stderr).toBe('');
    expect(added.stdout).toContain(`--gateway https://${NAME}:${ports.admin}`);
    expect(added.stdout).not.toContain('reaches this machine only');
  });

  it('user add says so when the URL it prints names loopback', async () => {
    const url = `https://127.0.0.1:${ports.admin}`;
    const added = await runCli(
      ['user', 'add', 'bob@example.org', '--public-url', url, '--config', configFile],
      { cwd: tmp.path },
    );
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toContain(`--gateway ${url}`);
    expect(added.stdout).toMatch(
      new RegExp(
        `^note: ${url.replace(/\./g, '\\.')} reaches this machine only; .*\\bhostname\\b`,
        'm',
      ),
    );
  });
});
