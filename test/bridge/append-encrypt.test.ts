/**
 * APPENDs encrypted by the bridge itself (docs/bridge.md, threat model; src/bridge/
 * append-encrypt.ts, group-certificate.ts), with real parts: a real gateway (`recrypt
 * start`), its published owner-signed profile, the bridge logged in as the device,
 * Python's imaplib APPENDing through the bridge, curl fetching the group certificate,
 * openssl reading the stored envelope, and the gateway's Maildir read directly
 * (test/helpers/bridge-append.ts). One gateway serves every case.
 *
 * What is shown: the stored file is byte for byte what the bridge uploaded (so the proxy
 * passed an envelope through and did not encrypt anything), its recipient info names the
 * published group certificate, the device reads it through the proxy, the client saw the
 * plaintext at once; after `owner rotate --fast` the next APPEND names the new group; a
 * bridge that cannot get a verified profile refuses the APPEND rather than upload the
 * plaintext, and so does one served a correctly signed profile from an owner key that did
 * not issue the device's certificate (over HTTPS with the gateway's own TLS key, so the
 * transport is trusted); and the group certificate verified before is kept (sealed,
 * `group.bin`) across a restart: a bridge restarted while its profile cannot be fetched
 * still encrypts to it, and says so in its log.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import { buildProfile, profileRequestListener, signProfile } from '../../src/profiles/index.js';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../../src/recrypt/index.js';
import {
  appendWithImaplib,
  published,
  recipientSerials,
  serialOf,
  serveWithGatewayKey,
  storedDrafts,
} from '../helpers/bridge-append.js';
import {
  ADDRESS,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { freePort } from '../helpers/ports.js';
import { decryptWith } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-bridge-append-');
let world: BridgeWorld;
let bridge: RunningBridge;

interface Logged {
  details: Record<string, unknown>;
  message: string;
}
/** A logger keeping what a bridge logs, for the assertions on it. */
function keptLogger(logged: Logged[]) {
  const keep = (details: object, message: string) =>
    logged.push({ details: details as Record<string, unknown>, message });
  return { info: keep, warn: keep, error: keep };
}
const logged: Logged[] = [];

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const serials = (message: Buffer) => recipientSerials(message, dir.path);
const serial = (certificate: Buffer) => serialOf(certificate, dir.path);
const drafts = () => storedDrafts(world);

/** SHA-256 of every APPEND the bridge encrypted and uploaded, from its log (append-encrypt.ts). */
function uploadedDigests(log = logged): string[] {
  return log
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

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  bridge = await runBridge({
    ...world.options(join(dir.path, 'bridge-data'), true),
    // Every APPEND fetches the profile again, so the rotation below is seen at once.
    groupCertificateMaxAgeMs: 0,
    logger: keptLogger(logged),
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
    const before = drafts().length;
    const result = await appendWithImaplib(bridge, draft, '(\\Draft)');
    expect(result.typ).toBe('OK');
    expect(result.body).toBe(draft);

    const stored = drafts();
    expect(stored.length).toBe(before + 1);
    const file = stored.find((bytes) => bytes.includes('pkcs7-mime'))!;
    expect(file.toString('latin1')).not.toContain(marker);
    // The stored file is what the bridge made: the proxy had nothing to encrypt.
    expect(uploadedDigests()).toContain(sha256(file));

    const group = published(world, '/group.cer');
    expect(serials(file)).toContain(serial(group));
    const logEntry = logged.find((l) => l.details['sha256'] === sha256(file))!;
    expect(logEntry.details['mailbox']).toBe('Drafts');

    const viaProxy = await throughProxy(result.uid);
    expect(decryptWith(world.device, viaProxy)?.toString('utf8')).toBe(draft);
  });

  it('after `owner rotate --fast` the next APPEND is encrypted to the new group certificate', async () => {
    const oldGroup = published(world, '/group.cer');
    const rotated = await world.device.owner(['owner', 'rotate', '--fast']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newGroup = published(world, '/group.cer');
    expect(newGroup.equals(oldGroup)).toBe(false);

    const marker = 'Draftafterrotationmarker';
    const draft = `From: ${ADDRESS}\r\nSubject: after rotation\r\n\r\n${marker}\r\n`;
    const result = await appendWithImaplib(bridge, draft, '(\\Draft)');
    expect(result.typ).toBe('OK');
    const file = drafts().find((bytes) => sha256(bytes) === uploadedDigests().at(-1))!;
    expect(file).toBeDefined();
    const names = serials(file);
    expect(names).toContain(serial(newGroup));
    expect(names).not.toContain(serial(oldGroup));
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
      const before = drafts().length;
      const marker = 'Draftthatmustnotleavemarker';
      const result = await appendWithImaplib(
        blind,
        `From: ${ADDRESS}\r\nSubject: no profile\r\n\r\n${marker}\r\n`,
      );
      expect(result.typ).toBe('NO');
      expect(drafts().length).toBe(before);
      for (const bytes of drafts()) expect(bytes.toString('latin1')).not.toContain(marker);
    } finally {
      await blind.close();
    }
  });
});

describe('a profile not signed by the owner CA of the device', () => {
  it('is not encrypted to: the APPEND gets NO and nothing reaches the gateway', async () => {
    const forged = await forgedProfile();
    const server = await serveWithGatewayKey(
      world,
      profileRequestListener({
        getSignedProfile: async (address) => (address === ADDRESS ? forged.jws : null),
        getGroupCertificate: async (address) => (address === ADDRESS ? forged.group : null),
      }),
    );
    const warnings: string[] = [];
    const options = world.options(join(dir.path, 'bridge-forged'), true);
    const fooled = await runBridge({
      ...options,
      setup: { ...options.setup!, profileUrl: server.url },
      logger: {
        info: () => undefined,
        warn: (details, message) => warnings.push(`${message} ${JSON.stringify(details)}`),
        error: (details, message) => warnings.push(`${message} ${JSON.stringify(details)}`),
      },
    });
    try {
      const before = drafts().length;
      const result = await appendWithImaplib(
        fooled,
        'Subject: forged\r\n\r\nForgedprofilemarker\r\n',
      );
      expect(result.typ).toBe('NO');
      expect(drafts().length).toBe(before);
      for (const bytes of drafts())
        expect(bytes.toString('latin1')).not.toContain('Forgedprofilemarker');
      // Refused for the signer, not for the transport (the TLS key is the gateway's own).
      expect(warnings.join('\n')).toContain("did not issue this device's certificate");
    } finally {
      await fooled.close();
      await server.close();
    }
  });
});

describe('the verified group certificate across a restart', () => {
  it('encrypts to it when the profile cannot be fetched after a restart', async () => {
    // The gateway's genuine profile, served from a port the test can close.
    const jws = published(world, '').toString('utf8');
    const group = published(world, '/group.cer');
    const server = await serveWithGatewayKey(world, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/jose' });
      res.end(jws);
    });
    const restartLog: Logged[] = [];
    const logger = keptLogger(restartLog);
    const dataDir = join(dir.path, 'bridge-restarted');
    try {
      const options = world.options(dataDir, true);
      const first = await runBridge({
        ...options,
        setup: { ...options.setup!, profileUrl: server.url },
        logger,
      });
      try {
        const before = await appendWithImaplib(first, `Subject: before\r\n\r\nBeforerestart\r\n`);
        expect(before.typ).toBe('OK');
      } finally {
        await first.close();
      }
      expect(existsSync(join(dataDir, 'group.bin'))).toBe(true);
    } finally {
      await server.close();
    }

    const second = await runBridge({ ...world.options(dataDir, false), logger });
    try {
      const marker = 'Afterrestartmarker';
      const after = await appendWithImaplib(second, `Subject: after\r\n\r\n${marker}\r\n`);
      expect(after.typ).toBe('OK');
      // The file this bridge uploaded last (its digest is logged) is the newest of Drafts.
      const digest = uploadedDigests(restartLog).at(-1);
      const stored = drafts().at(-1)!;
      expect(sha256(stored)).toBe(digest);
      expect(stored.toString('latin1')).not.toContain(marker);
      expect(serials(stored)).toContain(serial(group));
      expect(restartLog.map((l) => l.message)).toContain(
        'bridge: the profile did not refresh; encrypting to the last verified group certificate',
      );
    } finally {
      await second.close();
    }
  });
});
