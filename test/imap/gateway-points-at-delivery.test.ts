/**
 * Points computed at delivery in a real `recrypt start` (the wiring of src/gateway): a
 * user, its owner and one device made with the CLI, a message sent by SMTP, and the
 * operator's /metrics showing that the MX's copy got its point computed and that the
 * device's first fetch through the proxy took it instead of multiplying.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { RawImap } from '../helpers/gateway-imap-raw.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  enrolUserWithDevice,
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-points-gw-');
const configFile = join(tmp.path, 'recrypt.yaml');
const certFile = join(tmp.path, 'data', 'tls', 'cert.pem');
const ADDRESS = 'alice@example.org';
let ports: GatewayPorts;
let gateway: Spawned | undefined;
let imapPassword = '';

/** One sample of the gauge `imap_proxy_delivered_points{result}` from /metrics. */
function delivered(result: string): number {
  const text = execFileSync(
    'curl',
    ['-s', '--cacert', certFile, `https://127.0.0.1:${ports.operator}/metrics`],
    { encoding: 'utf8' },
  );
  const line = new RegExp(`^imap_proxy_delivered_points\\{result="${result}"\\} (\\d+)$`, 'm');
  return Number(line.exec(text)?.[1] ?? NaN);
}

beforeAll(async () => {
  requireBinary('curl');
  ports = await freeGatewayPorts();
  writeGatewayConfig(tmp.path, ports);
  gateway = await startGatewayProcess(configFile, ports);
  ({ imapPassword } = await enrolUserWithDevice(configFile, ports, ADDRESS));
}, 240_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('recrypt start computes points at delivery', () => {
  it("serves the device's first fetch of SMTP mail without a multiplication", async () => {
    expect(delivered('stored')).toBe(0);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: ports.smtp,
      secure: false,
      ignoreTLS: true,
    });
    await transport.sendMail({
      from: 'bob@sender.example',
      to: ADDRESS,
      subject: 'points at delivery',
      text: 'recrypted for the laptop before it asked\r\n',
    });
    await expect.poll(() => delivered('stored'), { timeout: 30_000 }).toBe(1);
    expect(delivered('plan_stored')).toBe(1);
    const reader = await RawImap.open(ports.imap, readFileSync(certFile, 'utf8'));
    try {
      expect(await reader.command(`LOGIN ${ADDRESS} "${imapPassword}"`)).toMatch(/^t\d+ OK/);
      expect(await reader.command('SELECT INBOX')).toMatch(/^t\d+ OK/);
      expect(await reader.command('FETCH 1 (BODY.PEEK[])')).toMatch(/^t\d+ OK/);
    } finally {
      reader.close();
    }
    // The whole plan was taken: neither a parse for E nor a multiplication.
    expect(delivered('plan_hits')).toBe(1);
    expect(delivered('misses')).toBe(0);
  });
});
