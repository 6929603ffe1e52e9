/**
 * The admin API's owner-signed endpoints over real TLS with a real SQLite key store:
 * devices in and out, the profile, the public endpoints; bad signatures (401), replayed
 * requests (409), duplicate device names (409), bad uploads (400) and oversized bodies
 * (413) each answered clearly and leaving the key store exactly as it was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGNATURE_HEADER } from '../../src/admin/request-signing.js';
import { hashDeviceCredential } from '../../src/keystore/index.js';
import { buildProfile, signProfile } from '../../src/profiles/index.js';
import {
  publicPoint,
  randomScalar,
  recryptionKey,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import {
  ADMIN_TOKEN,
  api,
  deviceCertificate,
  enrolBody,
  makeOwner,
  snapshot,
  startApiGateway,
  type ApiGateway,
  type TestOwner,
} from '../helpers/cli-api.js';

const ALICE = 'alice@example.org';

describe('admin API: owner-signed endpoints', () => {
  let gw: ApiGateway;
  let alice: TestOwner;
  let carol: TestOwner;
  let credentialHash: string;

  async function deviceBody(
    owner: TestOwner,
    name: string,
    overrides: Record<string, unknown> = {},
  ) {
    const d = randomScalar();
    return {
      name,
      client: 'standard',
      certificate: Buffer.from(await deviceCertificate(owner, name, d)).toString('base64'),
      rk: Buffer.from(scalarToBytes(recryptionKey(owner.groupSecret, d))).toString('base64'),
      credentialHash,
      ...overrides,
    };
  }

  /** Runs `attempt` and checks that the key store did not change. */
  async function unchanged<T>(attempt: () => Promise<T>): Promise<T> {
    const before = await snapshot(gw.keyStore);
    const result = await attempt();
    expect(await snapshot(gw.keyStore)).toBe(before);
    return result;
  }

  async function enrol(owner: TestOwner): Promise<void> {
    const added = await api(gw, 'POST', '/v1/users', {
      token: ADMIN_TOKEN,
      body: { address: owner.address },
    });
    const enrolled = await api(gw, 'POST', '/v1/enrol', {
      body: enrolBody(owner, added.json.enrolmentToken as string),
    });
    expect(enrolled.status).toBe(200);
  }

  beforeAll(async () => {
    gw = await startApiGateway();
    alice = await makeOwner(ALICE);
    carol = await makeOwner('carol@example.org');
    await enrol(alice);
    await enrol(carol);
    credentialHash = await hashDeviceCredential('device password', ALICE);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('publish the device credential parameters and salt the gateway accepts', async () => {
    const shown = await api(gw, 'GET', '/v1/owner', { sign: alice.signer });
    const salt = credentialHash.split('$')[4];
    expect(shown.json.deviceCredential).toEqual({ scheme: 'scrypt', logN: 14, r: 8, p: 1, salt });
  });

  it('accept a signed request; refuse missing, malformed, foreign, altered and stale signatures with 401', async () => {
    const ok = await api(gw, 'GET', '/v1/owner', { sign: alice.signer });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ address: ALICE, enrolment: 'enrolled' });

    const mallory = await makeOwner(ALICE);
    const attempts = [
      () => api(gw, 'POST', '/v1/owner/devices', { body: { name: 'x' } }),
      () =>
        api(gw, 'POST', '/v1/owner/devices', {
          body: { name: 'x' },
          headers: { [SIGNATURE_HEADER]: 'address=alice%40example.org;ts=1;nonce=short;sig=x' },
        }),
      () => api(gw, 'POST', '/v1/owner/devices', { body: { name: 'x' }, sign: mallory.signer }),
      () =>
        api(gw, 'POST', '/v1/owner/devices', {
          body: { name: 'x' },
          sign: { ...alice.signer, address: 'nobody@example.org' },
        }),
      () =>
        api(gw, 'POST', '/v1/owner/devices', {
          body: { name: 'x' },
          sign: { ...alice.signer, timestamp: Date.now() - 10 * 60 * 1000 },
        }),
    ];
    for (const attempt of attempts) {
      const reply = await unchanged(attempt);
      expect(reply.status).toBe(401);
      expect(reply.json.error).toBe('request signature not accepted');
    }
    // A valid signature over a different body.
    const signed = await api(gw, 'GET', '/v1/owner/devices', { sign: alice.signer });
    const altered = await unchanged(() =>
      api(gw, 'POST', '/v1/owner/devices', {
        body: { name: 'x' },
        headers: { [SIGNATURE_HEADER]: signed.signature! },
      }),
    );
    expect(altered.status).toBe(401);
  });

  it('refuse a replayed request with 409', async () => {
    const first = await api(gw, 'GET', '/v1/owner/devices', { sign: alice.signer });
    expect(first.status).toBe(200);
    const replay = await unchanged(() =>
      api(gw, 'GET', '/v1/owner/devices', { headers: { [SIGNATURE_HEADER]: first.signature! } }),
    );
    expect(replay.status).toBe(409);
    expect(replay.json.error).toBe('request replayed');
  });

  it('add a device; refuse a duplicate name (409), a wrong rk, a foreign certificate and bad fields (400)', async () => {
    const added = await api(gw, 'POST', '/v1/owner/devices', {
      sign: alice.signer,
      body: await deviceBody(alice, 'laptop'),
    });
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({
      device: { name: 'laptop', client: 'standard', revoked: null },
      imap: { port: 1993 },
    });
    const dup = await unchanged(async () =>
      api(gw, 'POST', '/v1/owner/devices', {
        sign: alice.signer,
        body: await deviceBody(alice, 'laptop'),
      }),
    );
    expect(dup.status).toBe(409);

    const bob = await makeOwner(ALICE);
    const cases: Array<[string, Record<string, unknown>]> = [
      ['rk', { rk: Buffer.from(scalarToBytes(randomScalar())).toString('base64') }],
      ['rk', { rk: Buffer.alloc(32).toString('base64') }],
      ['rk', { rk: Buffer.alloc(31, 1).toString('base64') }],
      [
        'certificate',
        {
          certificate: Buffer.from(await deviceCertificate(bob, 'evil', randomScalar())).toString(
            'base64',
          ),
        },
      ],
      ['certificate', { certificate: Buffer.from(alice.group).toString('base64').slice(0, 40) }],
      ['credentialHash', { credentialHash: 'plaintext password' }],
      // Owner-chosen scrypt parameters (log2 N 20, r and p 99 would take gigabytes per login).
      ['credentialHash', { credentialHash: withParams(credentialHash, '20', '99', '99') }],
      ['credentialHash', { credentialHash: withParams(credentialHash, '10', '8', '1') }],
      // A random salt, not the account's: the login would cost one more derivation.
      ['credentialHash', { credentialHash: await hashDeviceCredential('device password') }],
      ['credentialHash', { credentialHash: await hashDeviceCredential('pw', 'carol@example.org') }],
      ['client', { client: 'thunderbird' }],
      ['name', { name: '' }],
      ['name', { name: '../../etc' }],
    ];
    for (const [field, override] of cases) {
      const reply = await unchanged(async () =>
        api(gw, 'POST', '/v1/owner/devices', {
          sign: alice.signer,
          body: await deviceBody(alice, 'phone', override),
        }),
      );
      expect(reply.status, field).toBe(400);
      expect(String(reply.json.error), field).toContain(field === 'name' ? 'name' : field);
    }
    const big = Buffer.from(
      JSON.stringify({ ...(await deviceBody(alice, 'phone')), pad: 'x'.repeat(300 * 1024) }),
    );
    const oversized = await unchanged(() =>
      api(gw, 'POST', '/v1/owner/devices', { sign: alice.signer, rawBody: big }),
    );
    expect(oversized.status).toBe(413);
  });

  it('list and revoke devices; revoking deletes the rk; unknown ids are 404', async () => {
    const list = await api(gw, 'GET', '/v1/owner/devices', { sign: alice.signer });
    const devices = list.json.devices as Array<{ id: string; name: string }>;
    const laptop = devices.find((d) => d.name === 'laptop')!;
    expect((await gw.keyStore.keysForDevice(ALICE, laptop.id)).size).toBe(1);
    const unknown = await unchanged(() =>
      api(gw, 'POST', '/v1/owner/devices/0123456789abcdef/revoke', { sign: alice.signer }),
    );
    expect(unknown.status).toBe(404);
    // Carol, another enrolled owner, cannot revoke Alice's device.
    const foreign = await unchanged(() =>
      api(gw, 'POST', `/v1/owner/devices/${laptop.id}/revoke`, { sign: carol.signer }),
    );
    expect(foreign.status).toBe(404);
    const revoked = await api(gw, 'POST', `/v1/owner/devices/${laptop.id}/revoke`, {
      sign: alice.signer,
    });
    expect(revoked.status).toBe(200);
    expect(revoked.json.device).toMatchObject({ id: laptop.id });
    expect((await gw.keyStore.keysForDevice(ALICE, laptop.id)).size).toBe(0);
  });

  it('publish a profile signed by the owner key; refuse a foreign signer or another address (400)', async () => {
    const profile = (signer: TestOwner, address: string) =>
      signProfile(
        buildProfile({
          address,
          name: 'Alice',
          ownerPublicKey: publicPoint(signer.caSecret),
          groupCertificate: signer.group,
          issued: new Date(),
        }),
        signer.caSecret,
      );
    const published = await api(gw, 'PUT', '/v1/owner/profile', {
      sign: alice.signer,
      body: { profile: profile(alice, ALICE) },
    });
    expect(published.status).toBe(200);
    const mallory = await makeOwner(ALICE);
    const foreign = await unchanged(() =>
      api(gw, 'PUT', '/v1/owner/profile', {
        sign: alice.signer,
        body: { profile: profile(mallory, ALICE) },
      }),
    );
    expect(foreign.status).toBe(400);
    const garbage = await unchanged(() =>
      api(gw, 'PUT', '/v1/owner/profile', { sign: alice.signer, body: { profile: 'a.b.c' } }),
    );
    expect(garbage.status).toBe(400);
    const dave = await makeOwner('dave@example.org');
    const other = await unchanged(() =>
      api(gw, 'PUT', '/v1/owner/profile', {
        sign: alice.signer,
        body: { profile: profile(dave, dave.address) },
      }),
    );
    expect(other.status).toBe(400);
  });

  it('serve the public profile and group certificate without authentication', async () => {
    const profile = await api(gw, 'GET', `/.well-known/mail-profile/${encodeURIComponent(ALICE)}`);
    expect(profile.status).toBe(200);
    const cert = await api(
      gw,
      'GET',
      `/.well-known/mail-profile/${encodeURIComponent(ALICE)}/group.cer`,
    );
    expect(cert.status).toBe(200);
    expect((await api(gw, 'GET', '/.well-known/mail-profile/nobody%40example.org')).status).toBe(
      404,
    );
    expect((await api(gw, 'GET', '/healthz')).status).toBe(200);
  });

  it('after user remove, the owner key signs nothing any more', async () => {
    expect(
      (await api(gw, 'DELETE', `/v1/users/${encodeURIComponent(ALICE)}`, { token: ADMIN_TOKEN }))
        .status,
    ).toBe(204);
    expect((await api(gw, 'GET', '/v1/owner', { sign: alice.signer })).status).toBe(401);
  });
});

/** `hash` with its scrypt parameters replaced (the hash itself no longer matches). */
function withParams(hash: string, logN: string, r: string, p: string): string {
  const parts = hash.split('$');
  return [parts[0], logN, r, p, ...parts.slice(4)].join('$');
}
