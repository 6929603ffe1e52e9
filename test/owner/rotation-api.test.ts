/**
 * `POST /v1/owner/rotation` and the owner library's `rotateMailbox` against the real admin
 * API (in-process, TLS, SQLite): a tampered δ, a stale group id, a certificate from another
 * CA, a profile for another key and a replayed request are refused with nothing stored;
 * the key file never loses a group, also when a run is interrupted after the gateway
 * switched.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addDevice,
  encodeOwnerKeyFile,
  readOwnerKeyFile,
  type OwnerKey,
} from '../../src/owner/index.js';
import { rotateMailbox } from '../../src/owner/rotation.js';
import { buildProfile, signProfile } from '../../src/profiles/index.js';
import {
  certificatePublicPoint,
  invertScalar,
  issueGroupCertificate,
  multiplyPoint,
  multiplyScalars,
  publicPoint,
  randomScalar,
  recipientIdOf,
  scalarToBytes,
  type Scalar,
} from '../../src/recrypt/index.js';
import {
  api,
  makeOwner,
  snapshot,
  startApiGateway,
  type ApiGateway,
  type TestOwner,
} from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'rosa@example.org';
const PASSPHRASE = 'pass phrase';
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('mailbox rotation through the admin API', () => {
  let gw: ApiGateway;
  let owner: TestOwner;
  let key: OwnerKey;
  const dir = tempDir('recrypt-rotation-api-');
  const keyFile = join(dir.path, 'owner.key');

  beforeAll(async () => {
    gw = await startApiGateway();
    ({ owner, key } = await enrolOwner(gw, ADDRESS, 'Rosa'));
    // The key file (scrypt) and two devices (each a request to the gateway): at once.
    const [text] = await Promise.all([
      encodeOwnerKeyFile(key, PASSPHRASE),
      addDevice(key, { name: 'desk', outDir: dir.path }),
      addDevice(key, { name: 'phone', outDir: dir.path }),
    ]);
    writeFileSync(keyFile, text, { mode: 0o600 });
  });
  afterAll(async () => {
    await gw?.close();
    dir.remove();
  });

  /** A rotation request body for a new group g′ from the current `key`; parts replaceable. */
  async function rotationBody(
    from: OwnerKey,
    change: { delta?: Scalar; caSecret?: Scalar; ca?: Uint8Array; profileFor?: Uint8Array } = {},
  ) {
    const next = randomScalar();
    const certificate = await issueGroupCertificate({
      ca: change.ca ?? from.ownerCaCertificate,
      caSecret: change.caSecret ?? from.ownerCaSecret,
      publicKey: publicPoint(next),
      address: ADDRESS,
      now: new Date(),
    });
    const profile = signProfile(
      buildProfile({
        address: ADDRESS,
        name: 'Rosa',
        ownerPublicKey: publicPoint(from.ownerCaSecret),
        groupCertificate: change.profileFor ?? certificate,
        issued: new Date(),
      }),
      from.ownerCaSecret,
    );
    return {
      mode: 'fast',
      expectedGroupId: hex(recipientIdOf(from.groupCertificate)),
      groupCertificate: b64(certificate),
      delta: b64(
        scalarToBytes(change.delta ?? multiplyScalars(next, invertScalar(from.groupSecret))),
      ),
      profile,
    };
  }

  it('refuses a tampered δ, a stale group id, another CA, a profile for another key: nothing stored', async () => {
    const before = await snapshot(gw.keyStore);
    const profileBefore = await gw.keyStore.getProfile(ADDRESS);
    const other = await makeOwner(ADDRESS);
    const post = (body: unknown) =>
      api(gw, 'POST', '/v1/owner/rotation', { sign: owner.signer, body });
    const tampered = await post(await rotationBody(key, { delta: randomScalar() }));
    expect(tampered.status).toBe(400);
    expect(JSON.stringify(tampered.json)).toMatch(/delta/);
    const stale = await rotationBody(key);
    stale.expectedGroupId = hex(recipientIdOf(other.group));
    expect((await post(stale)).status).toBe(409);
    expect(
      (
        await post(
          await rotationBody(key, {
            caSecret: other.caSecret,
            ca: other.ca,
            profileFor: key.groupCertificate,
          }),
        )
      ).status,
    ).toBe(400);
    expect((await post(await rotationBody(key, { profileFor: key.groupCertificate }))).status).toBe(
      400,
    );
    expect((await post({ ...(await rotationBody(key)), mode: 'slow' })).status).toBe(400);
    expect(await snapshot(gw.keyStore)).toBe(before);
    expect(await gw.keyStore.getProfile(ADDRESS)).toBe(profileBefore);
    expect(await gw.keyStore.formerGroups(ADDRESS)).toEqual([]);
  });

  it('the library rotates; a run interrupted after the gateway switched is finished by the next', async () => {
    const first = await rotateMailbox(await readOwnerKeyFile(keyFile, PASSPHRASE), {
      keyFile,
      passphrase: PASSPHRASE,
      mode: 'fast',
    });
    expect(first).toMatchObject({ mode: 'fast', devices: 2, recovered: null });
    const afterFirst = readFileSync(keyFile);
    const second = await rotateMailbox(first.key, {
      keyFile,
      passphrase: PASSPHRASE,
      mode: 'fast',
    });
    expect((await gw.keyStore.getUser(ADDRESS))!.owner!.groupId).toBe(second.groupId);
    // As if the second run had died between the gateway's answer and the rename.
    renameSync(keyFile, `${keyFile}.next`);
    writeFileSync(keyFile, afterFirst, { mode: 0o600 });
    const third = await rotateMailbox(first.key, { keyFile, passphrase: PASSPHRASE, mode: 'fast' });
    expect(third.recovered).toBe('completed');
    expect(third.formerGroupId).toBe(second.groupId);
    const now = await readOwnerKeyFile(keyFile, PASSPHRASE);
    expect(hex(recipientIdOf(now.groupCertificate))).toBe(
      (await gw.keyStore.getUser(ADDRESS))!.owner!.groupId,
    );
    // Every group the mailbox had is in the key file, oldest first, and at the gateway.
    const former = (now.formerGroups ?? []).map((g) => hex(recipientIdOf(g.groupCertificate)));
    expect(former).toEqual([hex(recipientIdOf(owner.group)), first.groupId, second.groupId]);
    expect((await gw.keyStore.formerGroups(ADDRESS)).map((g) => g.groupId)).toEqual(former);
    expect(existsSync(`${keyFile}.next`)).toBe(false);
  });

  it('a .next the gateway never took is discarded; a stale key file is refused before the gateway is asked', async () => {
    const current = readFileSync(keyFile);
    const stale = { ...(await readOwnerKeyFile(keyFile, PASSPHRASE)) };
    // A .next for a group the gateway never saw.
    const orphanSecret = randomScalar();
    const orphan = {
      ...stale,
      groupSecret: orphanSecret,
      groupCertificate: await issueGroupCertificate({
        ca: stale.ownerCaCertificate,
        caSecret: stale.ownerCaSecret,
        publicKey: publicPoint(orphanSecret),
        address: ADDRESS,
        now: new Date(),
      }),
    };
    writeFileSync(`${keyFile}.next`, await encodeOwnerKeyFile(orphan, PASSPHRASE), {
      mode: 0o600,
    });
    const rotated = await rotateMailbox(stale, { keyFile, passphrase: PASSPHRASE, mode: 'fast' });
    expect(rotated.recovered).toBe('discarded');
    expect(existsSync(`${keyFile}.next`)).toBe(false);
    // `current` now holds a group the gateway replaced.
    const old = join(dir.path, 'old.key');
    writeFileSync(old, current, { mode: 0o600 });
    await expect(
      rotateMailbox(await readOwnerKeyFile(old, PASSPHRASE), {
        keyFile: old,
        passphrase: PASSPHRASE,
      }),
    ).rejects.toThrow(/not this key file's/);
    expect(readFileSync(old)).toEqual(current);
    expect(existsSync(`${old}.next`)).toBe(false);
  });

  it('rotates with δ: every device gets rk′ with rk′·D = G′; a replay of the request does nothing', async () => {
    // The key file is the gateway's current state (the library rotations above).
    const current = await readOwnerKeyFile(keyFile, PASSPHRASE);
    const formerIds = [
      ...(current.formerGroups ?? []).map((g) => hex(recipientIdOf(g.groupCertificate))),
      hex(recipientIdOf(current.groupCertificate)),
    ];
    const body = await rotationBody(current);
    const reply = await api(gw, 'POST', '/v1/owner/rotation', { sign: owner.signer, body });
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ mode: 'fast', devices: 2 });
    const user = (await gw.keyStore.getUser(ADDRESS))!;
    const newPoint = certificatePublicPoint(user.owner!.groupCertificate);
    for (const device of await gw.keyStore.listActiveDevices(ADDRESS)) {
      const keys = await gw.keyStore.keysForDevice(ADDRESS, device.id);
      expect([...keys.keys()].sort()).toEqual([...formerIds, user.owner!.groupId].sort());
      const rk = keys.get(user.owner!.groupId)!;
      expect(hex(multiplyPoint(certificatePublicPoint(device.certificate), rk))).toBe(
        hex(newPoint),
      );
    }
    const after = await snapshot(gw.keyStore);
    const replay = await api(gw, 'POST', '/v1/owner/rotation', {
      body,
      headers: { 'x-recrypt-signature': reply.signature! },
    });
    expect(replay.status).toBe(409);
    expect(await snapshot(gw.keyStore)).toBe(after);
  });
});
