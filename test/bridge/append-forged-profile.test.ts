/**
 * A gateway that serves a profile of its own making (src/bridge/group-certificate.ts):
 * a correctly signed profile for the address, but from an owner key that did not issue
 * the device's certificate, served over HTTPS with the gateway's own TLS key (so the
 * transport is trusted, as the gateway's would be). The bridge must refuse to encrypt to
 * it and refuse the APPEND, uploading nothing; Python's imaplib is the client, and the
 * gateway's Maildir is read directly.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import { buildProfile, profileRequestListener, signProfile } from '../../src/profiles/index.js';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../../src/recrypt/index.js';
import { ADDRESS, startBridgeWorld, type BridgeWorld } from '../helpers/bridge-world.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const dir = tempDir('recrypt-bridge-forged-');
let world: BridgeWorld;
let bridge: RunningBridge;
let server: Server;
const warnings: string[] = [];

/** A valid profile for ADDRESS signed by a fresh owner key (not the device's CA). */
async function forgedProfile(): Promise<{ jws: string; group: Uint8Array }> {
  const now = new Date(Date.now() - 60_000);
  const ca = await issueOwnerCa({ now });
  const group = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(randomScalar()),
    address: ADDRESS,
    now,
  });
  const profile = buildProfile({
    address: ADDRESS,
    name: 'Alice',
    ownerPublicKey: publicPoint(ca.secret),
    groupCertificate: group,
    issued: now,
  });
  return { jws: signProfile(profile, ca.secret), group };
}

function storedDrafts(): number {
  const drafts = join(world.gateway.dataDir, 'mail', ADDRESS, 'Maildir', '.Drafts');
  return ['cur', 'new']
    .map((sub) => join(drafts, sub))
    .filter((path) => existsSync(path))
    .reduce((n, path) => n + readdirSync(path).length, 0);
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  const forged = await forgedProfile();
  const tls = join(world.gateway.dataDir, 'tls');
  server = createServer(
    { key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) },
    profileRequestListener({
      getSignedProfile: async (address) => (address === ADDRESS ? forged.jws : null),
      getGroupCertificate: async (address) => (address === ADDRESS ? forged.group : null),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const options = world.options(join(dir.path, 'bridge-data'), true);
  bridge = await runBridge({
    ...options,
    setup: { ...options.setup!, profileUrl: `https://127.0.0.1:${port}` },
    logger: {
      info: () => undefined,
      warn: (details, message) => warnings.push(`${message} ${JSON.stringify(details)}`),
      error: (details, message) => warnings.push(`${message} ${JSON.stringify(details)}`),
    },
  });
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await new Promise((resolve) => server?.close(resolve));
  await world?.close();
  dir.remove();
});

describe('a profile not signed by the owner CA of the device', () => {
  it('is not encrypted to: the APPEND gets NO and nothing reaches the gateway', async () => {
    const before = storedDrafts();
    const script = `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=30)
m.login(sys.argv[3], sys.argv[4])
typ, data = m.append('Drafts', None, None, b'Subject: forged\\r\\n\\r\\nForgedprofilemarker\\r\\n')
print(typ, data[0].decode())
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
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(stdout).toMatch(/^NO /);
    expect(storedDrafts()).toBe(before);
    // Refused for the signer, not for the transport (the TLS key is the gateway's own).
    expect(warnings.join('\n')).toContain("did not issue this device's certificate");
  });
});
