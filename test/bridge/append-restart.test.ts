/**
 * The group certificate the bridge verified is kept (sealed, `group.bin`) across restarts
 * (src/bridge/group-certificate.ts): a bridge restarted while its profile cannot be
 * fetched still encrypts APPENDs, to the certificate it verified before, and says so in
 * its log. Real parts: a real gateway, its genuine signed profile (fetched with curl)
 * served by a node:https server with the gateway's TLS key that the test then stops,
 * Python's imaplib through the bridge, openssl reading the stored envelope from the
 * gateway's Maildir.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import { ADDRESS, startBridgeWorld, type BridgeWorld } from '../helpers/bridge-world.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const dir = tempDir('recrypt-bridge-append-restart-');
const dataDir = join(dir.path, 'bridge-data');
let world: BridgeWorld;
let server: Server | undefined;
const messages: string[] = [];
const logger = {
  info: () => undefined,
  warn: (_details: object, message: string) => messages.push(message),
  error: (_details: object, message: string) => messages.push(message),
};

function curl(path: string): Buffer {
  return execFileSync('curl', [
    '-sf',
    '--cacert',
    world.gateway.certFile,
    `https://127.0.0.1:${world.gateway.ports.admin}/.well-known/mail-profile/${encodeURIComponent(ADDRESS)}${path}`,
  ]);
}

async function append(bridge: RunningBridge, text: string): Promise<string> {
  const script = `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=30)
m.login(sys.argv[3], sys.argv[4])
typ, data = m.append('Drafts', None, None, sys.argv[5].encode())
print(typ)
m.logout()
`;
  const { stdout } = await run(
    'python3',
    [
      '-c',
      script,
      String(bridge.imapsPort),
      bridge.certFile!,
      ADDRESS,
      bridge.account.localPassword,
      text,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return stdout.trim();
}

/** The gateway's stored Drafts, newest last by name (Maildir names start with the time). */
function storedDrafts(): Buffer[] {
  const drafts = join(world.gateway.dataDir, 'mail', ADDRESS, 'Maildir', '.Drafts');
  return ['new', 'cur']
    .map((sub) => join(drafts, sub))
    .filter((path) => existsSync(path))
    .flatMap((path) => readdirSync(path).map((name) => join(path, name)))
    .sort((a, b) => a.split('/').pop()!.localeCompare(b.split('/').pop()!))
    .map((path) => readFileSync(path));
}

function serials(message: Buffer): string[] {
  const file = join(dir.path, 'stored.eml');
  writeFileSync(file, message);
  const printed = execFileSync('openssl', ['cms', '-cmsout', '-print', '-in', file], {
    encoding: 'utf8',
  });
  return [...printed.matchAll(/serialNumber: *(0x[0-9A-Fa-f]+|\d+)/g)].map((m) =>
    BigInt(m[1]!).toString(16),
  );
}

function serialOf(certificate: Buffer): string {
  const file = join(dir.path, 'group.cer');
  writeFileSync(file, certificate);
  const out = execFileSync(
    'openssl',
    ['x509', '-inform', 'DER', '-in', file, '-noout', '-serial'],
    {
      encoding: 'utf8',
    },
  );
  return BigInt(`0x${out.trim().replace(/^serial=/, '')}`).toString(16);
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => (server === undefined ? resolve(null) : server.close(resolve)));
  await world?.close();
  dir.remove();
});

describe('the verified group certificate across a restart', () => {
  it('encrypts to it when the profile cannot be fetched after a restart', async () => {
    // The gateway's genuine profile, served from a port the test can close.
    const jws = curl('').toString('utf8');
    const group = curl('/group.cer');
    const tls = join(world.gateway.dataDir, 'tls');
    server = createServer(
      { key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/jose' });
        res.end(jws);
      },
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const options = world.options(dataDir, true);
    const first = await runBridge({
      ...options,
      setup: { ...options.setup!, profileUrl: `https://127.0.0.1:${port}` },
      logger,
    });
    try {
      expect(await append(first, `Subject: before\r\n\r\nBeforerestartmarker\r\n`)).toBe('OK');
    } finally {
      await first.close();
    }
    expect(existsSync(join(dataDir, 'group.bin'))).toBe(true);
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;

    const second = await runBridge({ ...world.options(dataDir, false), logger });
    try {
      const marker = 'Afterrestartmarker';
      expect(await append(second, `Subject: after\r\n\r\n${marker}\r\n`)).toBe('OK');
      const stored = storedDrafts().at(-1)!;
      expect(stored.toString('latin1')).not.toContain(marker);
      expect(serials(stored)).toContain(serialOf(group));
      expect(messages).toContain(
        'bridge: the profile did not refresh; encrypting to the last verified group certificate',
      );
    } finally {
      await second.close();
    }
  });
});
