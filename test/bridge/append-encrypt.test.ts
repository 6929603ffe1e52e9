/**
 * APPENDs encrypted by the bridge itself (docs/bridge.md, threat model; src/bridge/
 * append-encrypt.ts), with real parts: a real gateway (`recrypt start`), its published
 * owner-signed profile, the bridge logged in as the device, Python's imaplib APPENDing
 * through the bridge, curl fetching the group certificate, openssl reading the stored
 * envelope, and the gateway's Maildir read directly.
 *
 * What is shown: the stored file is byte for byte what the bridge uploaded (so the proxy
 * passed an envelope through and did not encrypt anything), its recipient info names the
 * published group certificate, the device reads it through the proxy, the client saw the
 * plaintext at once; after `owner rotate --fast` the next APPEND names the new group; and
 * a bridge that cannot get a verified profile refuses the APPEND rather than upload the
 * plaintext.
 */
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  ADDRESS,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { freePort } from '../helpers/ports.js';
import { decryptWith } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const dir = tempDir('recrypt-bridge-append-');
let world: BridgeWorld;
let bridge: RunningBridge;

interface Logged {
  details: Record<string, unknown>;
  message: string;
}
const logged: Logged[] = [];
const logger = {
  info: (details: object, message: string) =>
    logged.push({ details: details as Record<string, unknown>, message }),
  warn: (details: object, message: string) =>
    logged.push({ details: details as Record<string, unknown>, message }),
  error: (details: object, message: string) =>
    logged.push({ details: details as Record<string, unknown>, message }),
};

/** imaplib APPENDs `message` to Drafts through `target`, then reads it back by its APPENDUID. */
async function appendWithImaplib(
  target: RunningBridge,
  message: string,
): Promise<{ ok: boolean; response: string; uid: number; body: string }> {
  const script = `
import imaplib, ssl, sys, json, re
ctx = ssl.create_default_context(cafile=sys.argv[2])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=30)
m.login(sys.argv[3], sys.argv[4])
typ, data = m.append('Drafts', '(\\\\Draft)', None, sys.argv[5].encode())
if typ != 'OK':
    print(json.dumps({'ok': False, 'response': data[0].decode(), 'uid': 0, 'body': ''}))
    sys.exit(0)
uid = re.search(rb'APPENDUID \\d+ (\\d+)', data[0]).group(1).decode()
m.select('Drafts')
typ, fetched = m.uid('FETCH', uid, '(BODY.PEEK[])')
m.logout()
print(json.dumps({'ok': True, 'response': data[0].decode(), 'uid': int(uid),
  'body': fetched[0][1].decode('utf-8', 'replace')}))
`;
  const { stdout } = await run(
    'python3',
    [
      '-c',
      script,
      String(target.imapsPort),
      target.certFile!,
      ADDRESS,
      target.account.localPassword,
      message,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(stdout) as Awaited<ReturnType<typeof appendWithImaplib>>;
}

const draftsDir = () => join(world.gateway.dataDir, 'mail', ADDRESS, 'Maildir', '.Drafts');

/** Every message file of the gateway's Drafts, as its Maildir holds them. */
function storedDrafts(): Buffer[] {
  return ['cur', 'new'].flatMap((sub) => {
    const path = join(draftsDir(), sub);
    return existsSync(path) ? readdirSync(path).map((name) => readFileSync(join(path, name))) : [];
  });
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The group certificate the gateway publishes now, fetched with curl (docs/profile.md §5). */
function publishedGroupCertificate(): Buffer {
  return execFileSync('curl', [
    '-sf',
    '--cacert',
    world.gateway.certFile,
    `https://127.0.0.1:${world.gateway.ports.admin}/.well-known/mail-profile/${encodeURIComponent(ADDRESS)}/group.cer`,
  ]);
}

/** Issuer serial numbers of an S/MIME message's recipient infos, as openssl prints them. */
function recipientSerials(message: Buffer): string[] {
  const file = join(dir.path, 'stored.eml');
  writeFileSync(file, message);
  const printed = execFileSync('openssl', ['cms', '-cmsout', '-print', '-in', file], {
    encoding: 'utf8',
  });
  // Decimal, or 0x-hex for some sizes, depending on the openssl version.
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

/** SHA-256 of every APPEND the bridge encrypted and uploaded, from its log (append-encrypt.ts). */
function uploadedDigests(): string[] {
  return logged
    .filter((l) => l.message === 'bridge: APPEND encrypted to the group')
    .map((l) => String(l.details['sha256']));
}

/** Reads the stored draft `uid` through the gateway's proxy as the device. */
async function throughProxy(uid: number): Promise<Buffer> {
  const client = await world.proxyClient();
  try {
    const fetched = await withMailbox(client, 'Drafts', () =>
      client.fetchOne(String(uid), { source: true }, { uid: true }),
    );
    return fetched === false ? Buffer.alloc(0) : fetched.source!;
  } finally {
    await client.logout();
  }
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  bridge = await runBridge({
    ...world.options(join(dir.path, 'bridge-data'), true),
    // Every APPEND fetches the profile again, so the rotation below is seen at once.
    groupCertificateMaxAgeMs: 0,
    logger,
  });
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await world?.close();
  dir.remove();
});

describe('the bridge encrypts APPENDs', () => {
  it('uploads an envelope to the published group: the gateway stores exactly those bytes, the client sees the plaintext', async () => {
    const marker = 'Draftencryptedbythebridgemarker';
    const draft = `From: ${ADDRESS}\r\nTo: bob@sender.example\r\nSubject: bridge draft\r\n\r\n${marker}\r\n`;
    const before = storedDrafts().length;
    const result = await appendWithImaplib(bridge, draft);
    expect(result.ok).toBe(true);
    expect(result.body).toBe(draft);

    const stored = storedDrafts();
    expect(stored.length).toBe(before + 1);
    const file = stored.find((bytes) => bytes.includes('pkcs7-mime'))!;
    expect(file.toString('latin1')).not.toContain(marker);
    // The stored file is what the bridge made: the proxy had nothing to encrypt.
    expect(uploadedDigests()).toContain(sha256(file));

    const group = publishedGroupCertificate();
    expect(recipientSerials(file)).toContain(serialOf(group));
    const logEntry = logged.find((l) => l.details['sha256'] === sha256(file))!;
    expect(logEntry.details['mailbox']).toBe('Drafts');

    const viaProxy = await throughProxy(result.uid);
    expect(decryptWith(world.device, viaProxy)?.toString('utf8')).toBe(draft);
  });

  it('after `owner rotate --fast` the next APPEND is encrypted to the new group certificate', async () => {
    const oldGroup = publishedGroupCertificate();
    const rotated = await world.device.owner(['owner', 'rotate', '--fast']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newGroup = publishedGroupCertificate();
    expect(newGroup.equals(oldGroup)).toBe(false);

    const marker = 'Draftafterrotationmarker';
    const draft = `From: ${ADDRESS}\r\nSubject: after rotation\r\n\r\n${marker}\r\n`;
    const result = await appendWithImaplib(bridge, draft);
    expect(result.ok).toBe(true);
    const file = storedDrafts().find((bytes) => sha256(bytes) === uploadedDigests().at(-1))!;
    expect(file).toBeDefined();
    const serials = recipientSerials(file);
    expect(serials).toContain(serialOf(newGroup));
    expect(serials).not.toContain(serialOf(oldGroup));
    const viaProxy = await throughProxy(result.uid);
    expect(decryptWith(world.device, viaProxy)?.toString('utf8')).toBe(draft);
  });

  it('refuses the APPEND, uploading nothing, when no verified profile can be had', async () => {
    const closed = await freePort();
    const options = world.options(join(dir.path, 'bridge-no-profile'), true);
    const blind = await runBridge({
      ...options,
      setup: { ...options.setup!, profileUrl: `https://127.0.0.1:${closed}` },
    });
    try {
      const before = storedDrafts().length;
      const marker = 'Draftthatmustnotleavemarker';
      const result = await appendWithImaplib(
        blind,
        `From: ${ADDRESS}\r\nSubject: no profile\r\n\r\n${marker}\r\n`,
      );
      expect(result.ok).toBe(false);
      expect(storedDrafts().length).toBe(before);
      for (const bytes of storedDrafts()) expect(bytes.toString('latin1')).not.toContain(marker);
    } finally {
      await blind.close();
    }
  });
});
