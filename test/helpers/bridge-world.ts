/**
 * What the device bridge tests share: a real gateway (`recrypt init` + `recrypt start`
 * with submission on, test/helpers/submission-world.ts), one user with a device from
 * `recrypt device add` (its key re-exported as a .p12 with openssl), mail delivered to
 * its MX over SMTP, clients of the gateway's proxy and of the bridge (imapflow, and
 * Python's imaplib scripts), and the bridge's options for a data directory. A test file
 * starts one world and lets its cases share it: a gateway start and an enrolment cost
 * about ten seconds.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { createTransport } from 'nodemailer';
import type { BridgeOptions, RunningBridge } from '../../src/bridge/bridge.js';
import {
  enrolWithDevice,
  makeGateway,
  type Device,
  type RunningTestGateway,
} from './submission-world.js';

export const ADDRESS = 'alice@example.org';
export const PASSPHRASE = 'bridge passphrase for the test';
export const P12_PASSWORD = 'p12-password-for-the-test';
/** A fast scrypt for the tests' cache keys (the real default costs ~0.5 s per start). */
export const TEST_SCRYPT = { N: 1 << 14, r: 8, p: 1 };

export interface BridgeWorld {
  gateway: RunningTestGateway;
  device: Device;
  p12File: string;
  /** Options for a bridge on `dataDir`; with `setup`, those of a first start. */
  options(dataDir: string, setup: boolean): BridgeOptions;
  deliver(subject: string, text: string): Promise<void>;
  /** A client of the gateway's proxy as the same device (another device's view). */
  proxyClient(): Promise<ImapFlow>;
  close(): Promise<void>;
}

/** `device`'s key and certificate as a .p12 (openssl) at `file`, with P12_PASSWORD; returns `file`. */
export function exportP12(device: Device, file: string): string {
  execFileSync('openssl', [
    'pkcs12',
    '-export',
    '-inkey',
    device.keyFile,
    '-in',
    device.certFile,
    '-out',
    file,
    '-passout',
    `pass:${P12_PASSWORD}`,
  ]);
  return file;
}

export async function startBridgeWorld(root: string): Promise<BridgeWorld> {
  const gateway = await makeGateway(root, 'gateway', (ports) => ({
    submission: { host: '127.0.0.1', port: ports.submission, tlsPort: ports.submissionTls },
  }));
  const device = await enrolWithDevice(gateway, ADDRESS);
  const p12File = exportP12(device, join(root, 'device.p12'));
  const ca = readFileSync(gateway.certFile, 'utf8');
  return {
    gateway,
    device,
    p12File,
    options: (dataDir, setup) => ({
      dataDir,
      passphrase: PASSPHRASE,
      imapPort: 0,
      imapsPort: 0,
      pollMs: 300,
      scryptCost: TEST_SCRYPT,
      ...(setup
        ? {
            setup: {
              p12: new Uint8Array(readFileSync(p12File)),
              p12Password: P12_PASSWORD,
              address: ADDRESS,
              // The gateway's public listener publishes the signed profile (docs/profile.md §5).
              profileUrl: `https://127.0.0.1:${gateway.ports.admin}`,
              submission: {
                host: '127.0.0.1',
                port: gateway.ports.submissionTls,
                tls: 'implicit',
                ca,
              },
              upstream: {
                host: '127.0.0.1',
                port: gateway.ports.imap,
                tls: 'implicit',
                ca,
                user: ADDRESS,
                password: device.password,
              },
            },
          }
        : {}),
    }),
    async deliver(subject, text) {
      const transport = createTransport({
        host: '127.0.0.1',
        port: gateway.ports.smtp,
        secure: false,
        ignoreTLS: true,
      });
      await transport.sendMail({ from: 'bob@sender.example', to: ADDRESS, subject, text });
      transport.close();
    },
    async proxyClient() {
      const client = new ImapFlow({
        host: '127.0.0.1',
        port: gateway.ports.imap,
        secure: true,
        tls: { ca },
        auth: { user: ADDRESS, pass: device.password },
        logger: false,
      });
      await client.connect();
      return client;
    },
    close: () => gateway.process.stop(10_000),
  };
}

/** A small plaintext message, as another device's client APPENDs it (the proxy encrypts it). */
export const plainMessage = (subject: string, body: string): Buffer =>
  Buffer.from(`From: bob@sender.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

/**
 * Creates `name` through the gateway's proxy and APPENDs `count` messages to it, message i
 * with the subject `<name in lower case> i` and the body `<name> i`.
 */
export async function fillMailbox(world: BridgeWorld, name: string, count: number): Promise<void> {
  const proxy = await world.proxyClient();
  try {
    await proxy.mailboxCreate(name);
    for (let i = 1; i <= count; i++)
      await proxy.append(name, plainMessage(`${name.toLowerCase()} ${i}`, `${name} ${i}`));
  } finally {
    await proxy.logout();
  }
}

/** A client of the bridge (STARTTLS port, the bridge's own certificate). */
export async function bridgeClient(bridge: RunningBridge): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: bridge.imapPort,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: readFileSync(bridge.certFile!, 'utf8') },
    auth: { user: ADDRESS, pass: bridge.account.localPassword },
    logger: false,
  });
  await client.connect();
  return client;
}

/**
 * A Python imaplib `script` against the bridge's TLS port, its JSON output parsed. The
 * script gets argv: the port, the bridge's certificate, the address, the local password,
 * then `args`. Run without blocking: the bridge answers from this process's event loop.
 */
export async function imaplibJson<T>(
  bridge: RunningBridge,
  script: string,
  ...args: string[]
): Promise<T> {
  const { stdout } = await promisify(execFile)(
    'python3',
    [
      '-c',
      script,
      String(bridge.imapsPort),
      bridge.certFile!,
      ADDRESS,
      bridge.account.localPassword,
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(stdout) as T;
}

export async function withMailbox<T>(
  client: ImapFlow,
  path: string,
  body: () => Promise<T>,
): Promise<T> {
  const lock = await client.getMailboxLock(path);
  try {
    return await body();
  } finally {
    lock.release();
  }
}

/** The two client files as real parsers read them: Python's ElementTree and plistlib. */
export async function readClientFiles(
  autoconfig: string,
  mobileconfig: string,
): Promise<{
  thunderbird: { incoming: string[]; outgoing: string[] };
  apple: { type: string; payloads: Array<Record<string, unknown>> };
}> {
  const script = `
import json, plistlib, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
def server(tag):
    s = root.find('emailProvider/' + tag)
    return [s.get('type')] + [s.find(k).text for k in ('hostname', 'port', 'socketType', 'username')]
with open(sys.argv[2], 'rb') as f:
    profile = plistlib.load(f)
payloads = [{k: (v if not isinstance(v, bytes) else len(v)) for k, v in p.items()} for p in profile['PayloadContent']]
print(json.dumps({'thunderbird': {'incoming': server('incomingServer'), 'outgoing': server('outgoingServer')},
  'apple': {'type': profile['PayloadType'], 'payloads': payloads}}))
`;
  const { stdout } = await promisify(execFile)('python3', ['-c', script, autoconfig, mobileconfig]);
  return JSON.parse(stdout) as Awaited<ReturnType<typeof readClientFiles>>;
}
