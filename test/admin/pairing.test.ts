/**
 * Device pairing through the admin API (src/admin/pairing.ts) with the owner's and the
 * device's library calls (src/owner/pairing-*.ts), over real TLS and a real SQLite key
 * store: the device makes d, the owner approves by the short code, the gateway stores
 * rk = β·τ with rk·D = G and forgets τ. Refused, with nothing stored: a wrong or
 * tampered invite, an expired one, one for another user, a replayed join or approve, a
 * tampered β, a certificate for another key, a wrong short code, a request made
 * without the invitation's key (what the gateway itself could forge), too many requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerClient } from '../../src/owner/common.js';
import { callGateway } from '../../src/owner/gateway-client.js';
import type { OwnerKey } from '../../src/owner/key-file.js';
import {
  checkPairing,
  startPairing,
  type PendingDevicePairing,
} from '../../src/owner/pairing-device.js';
import {
  approvePairing,
  createPairingInvitation,
  listPendingPairings,
  refusePairing,
} from '../../src/owner/pairing-owner.js';
import { decodePairingInvitation, encodePairingInvitation } from '../../src/owner/pairing-wire.js';
import { MAX_PENDING_PAIRINGS } from '../../src/admin/pairing.js';
import {
  certificatePublicPoint,
  issueDeviceCertificate,
  multiplyPoint,
  privateKeyObject,
  publicPoint,
  randomScalar,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import { readDeviceRequest } from '../../src/recrypt/device-request.js';
import { api, snapshot, startApiGateway, type ApiGateway } from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';

describe('device pairing through the admin API', () => {
  let gw: ApiGateway;
  let alice: OwnerKey;
  let bob: OwnerKey;

  const enrolled = async (address: string): Promise<OwnerKey> =>
    (await enrolOwner(gw, address)).key;

  /** Everything stored about users, devices and pairing requests, as comparable JSON. */
  async function state(): Promise<string> {
    const pairings = [];
    for (const key of [alice, bob])
      pairings.push((await gw.keyStore.listPairingRequests(key.address)).map((r) => r.id));
    return (await snapshot(gw.keyStore)) + JSON.stringify(pairings);
  }

  async function refusedUnchanged(attempt: () => Promise<unknown>, reason: RegExp): Promise<void> {
    const before = await state();
    await expect(attempt()).rejects.toThrow(reason);
    expect(await state()).toBe(before);
  }

  beforeAll(async () => {
    gw = await startApiGateway();
    alice = await enrolled('alice@example.org');
    bob = await enrolled('bob@example.org');
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('pairs a device: the owner approves by the code, rk maps D to G, the device picks up its certificate once', async () => {
    const { invitation } = await createPairingInvitation(alice);
    const pending = await startPairing(invitation, { name: 'phone' });
    expect(pending.shortCode).toMatch(/^[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    const listed = await listPendingPairings(alice);
    expect(listed.map((p) => [p.shortCode, p.fromInvitation])).toEqual([[pending.shortCode, true]]);
    expect(await checkPairing(pending)).toBeNull();

    const device = await approvePairing(alice, pending.shortCode.toLowerCase().replace('-', ''));
    expect(device).toMatchObject({ name: 'phone', client: 'standard' });
    const stored = (await gw.keyStore.getDevice(alice.address, device.id))!;
    const keys = await gw.keyStore.keysForDevice(alice.address, device.id);
    const rk = [...keys.values()][0]!;
    expect(
      Buffer.from(multiplyPoint(publicPoint(pending.deviceSecret), rk)).equals(
        Buffer.from(certificatePublicPoint(alice.groupCertificate)),
      ),
    ).toBe(true);
    // τ is gone from the approved record.
    expect((await gw.keyStore.getPairingRequest(alice.address, pending.requestId))?.tau).toBeNull();

    const approved = await checkPairing(pending);
    expect(Buffer.from(approved!.certificate).equals(Buffer.from(stored.certificate))).toBe(true);
    expect(approved!.username).toBe(alice.address);
    await expect(checkPairing(pending)).rejects.toThrow(/HTTP 404/);
    expect(await gw.keyStore.listPairingRequests(alice.address)).toEqual([]);
  });

  it('refuses a tampered, expired or foreign invite, and a replayed join; nothing stored', async () => {
    const { invitation } = await createPairingInvitation(alice);
    const decoded = decodePairingInvitation(invitation);
    const tampered = encodePairingInvitation({
      ...decoded,
      invite: decoded.invite.slice(0, -4) + (decoded.invite.endsWith('AAAA') ? 'BBBB' : 'AAAA'),
    });
    await refusedUnchanged(() => startPairing(tampered, { name: 'x1' }), /HTTP 403/);
    // Bob's invite presented for Alice's mailbox.
    const forBob = decodePairingInvitation((await createPairingInvitation(bob)).invitation);
    const stolen = encodePairingInvitation({ ...forBob, address: alice.address, udf: decoded.udf });
    await refusedUnchanged(() => startPairing(stolen, { name: 'x2' }), /HTTP 403/);
    // Expired: the gateway's clock a day and an hour on.
    gw.skew.ms = 25 * 3600 * 1000;
    try {
      await refusedUnchanged(() => startPairing(invitation, { name: 'x3' }), /HTTP 403/);
    } finally {
      gw.skew.ms = 0;
    }
    // Used once, then replayed.
    const first = await startPairing(invitation, { name: 'tablet' });
    await refusedUnchanged(() => startPairing(invitation, { name: 'tablet2' }), /HTTP 403/);
    await refusePairing(alice, first.shortCode);
    expect(await gw.keyStore.listPairingRequests(alice.address)).toEqual([]);
  });

  it('refuses a wrong short code, a tampered β and a certificate for another key; then approves once', async () => {
    const pending = await startPairing((await createPairingInvitation(alice)).invitation, {
      name: 'laptop',
      client: 'outlook',
    });
    await refusedUnchanged(() => approvePairing(alice, 'AAAA-AAAA'), /no pending pairing/);
    const [relayed] = await listPendingPairings(alice);
    const { point } = await readDeviceRequest(relayed!.certificateRequest);
    const issue = (publicKey: Uint8Array) =>
      issueDeviceCertificate({
        ca: alice.ownerCaCertificate,
        caSecret: alice.ownerCaSecret,
        publicKey,
        address: alice.address,
        name: 'laptop',
        now: new Date(),
      });
    const approve = (beta: bigint, certificate: Uint8Array) =>
      callGateway(ownerClient(alice), 'POST', `/v1/owner/pairing-requests/${relayed!.id}/approve`, {
        beta: Buffer.from(scalarToBytes(beta)).toString('base64'),
        certificate: Buffer.from(certificate).toString('base64'),
      });
    const certificate = await issue(point);
    await refusedUnchanged(() => approve(randomScalar(), certificate), /beta: .*HTTP 400/);
    const other = await issue(publicPoint(randomScalar()));
    await refusedUnchanged(() => approve(randomScalar(), other), /certificate: .*HTTP 400/);
    // Still pending: the owner's real approve goes through, and a replay of it does nothing.
    await approvePairing(alice, pending.shortCode);
    const afterApprove = await state();
    await expect(approve(randomScalar(), certificate)).rejects.toThrow(/HTTP 404/);
    expect(await state()).toBe(afterApprove);
    expect((await checkPairing(pending))?.device.client).toBe('outlook');
  });

  it("refuses to approve a request made without the invitation's key (as the gateway could); nothing stored", async () => {
    const decoded = decodePairingInvitation((await createPairingInvitation(alice)).invitation);
    // Everything the gateway knows of the invitation, and a key of its own.
    const forged = encodePairingInvitation({
      ...decoded,
      key: Buffer.alloc(32, 7).toString('base64url'),
    });
    const pending = await startPairing(forged, { name: 'intruder' });
    const [listed] = await listPendingPairings(alice);
    expect(listed).toMatchObject({ shortCode: pending.shortCode, fromInvitation: false });
    await refusedUnchanged(
      () => approvePairing(alice, pending.shortCode),
      /not made with one of your invitations/,
    );
    await refusePairing(alice, pending.shortCode);
  });

  it('an expired request is neither listed, nor approved, nor picked up', async () => {
    const pending = await startPairing((await createPairingInvitation(alice)).invitation, {
      name: 'old-phone',
    });
    const signer = (skew: number) => ({
      address: alice.address,
      key: privateKeyObject(alice.ownerCaSecret),
      timestamp: Date.now() + skew,
    });
    const day = 25 * 3600 * 1000;
    gw.skew.ms = day;
    try {
      const listed = await api(gw, 'GET', '/v1/owner/pairing-requests', { sign: signer(day) });
      expect(listed.status).toBe(200);
      expect(listed.json.requests).toEqual([]);
      const before = await state();
      const approve = await api(
        gw,
        'POST',
        `/v1/owner/pairing-requests/${pending.requestId}/approve`,
        {
          sign: signer(day),
          body: {
            beta: Buffer.from(scalarToBytes(randomScalar())).toString('base64'),
            certificate: 'MAA=',
          },
        },
      );
      expect(approve.status).toBe(404);
      await expect(checkPairing(pending)).rejects.toThrow(/HTTP 404/);
      expect(await state()).toBe(before);
    } finally {
      gw.skew.ms = 0;
    }
    await refusePairing(alice, pending.shortCode);
  });

  it('bounds the requests waiting for one owner', async () => {
    const waiting: PendingDevicePairing[] = [];
    for (let i = 0; i < MAX_PENDING_PAIRINGS; i++)
      waiting.push(
        await startPairing((await createPairingInvitation(bob)).invitation, { name: `d${i}` }),
      );
    const extra = (await createPairingInvitation(bob)).invitation;
    await refusedUnchanged(() => startPairing(extra, { name: 'one-more' }), /HTTP 429/);
    await refusePairing(bob, waiting[0]!.shortCode);
    // The refused attempt left the invite usable.
    await startPairing(extra, { name: 'one-more' });
    expect(await gw.keyStore.listPairingRequests(bob.address)).toHaveLength(MAX_PENDING_PAIRINGS);
  });
});
