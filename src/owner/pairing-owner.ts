/**
 * The owner's side of a device pairing (docs/cli.md "Pairing a device"), on the owner's
 * machine with the owner key file: issue the invitation, list what devices asked, and
 * approve the one whose short code the owner compared with the device's screen.
 *
 * The approve opens α = t·d⁻¹ (sealed to the group key; uniform whatever d is), answers
 * β = g·α and issues the device certificate for the D of the device's signed request.
 * Nothing of the device's is written here; α, β and g stay in memory.
 */
import {
  readDeviceRequest,
  certificatePublicPoint,
  issueDeviceCertificate,
  ownerRespond,
  recipientIdOf,
  scalarToBytes,
} from '../recrypt/index.js';
import { ownerUdf } from '../profiles/index.js';
import { ownerClient } from './common.js';
import type { DeviceView } from './devices.js';
import { OwnerError } from './errors.js';
import { callGateway } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';
import { openAlpha } from './list-join.js';
import {
  encodePairingInvitation,
  pairingInvitationKey,
  pairingRequestTag,
  pairingShortCode,
  sameShortCode,
  sameTag,
  type PairingInvitation,
} from './pairing-wire.js';
import { pemToDer } from './remote-join.js';

export function ownerUdfOf(key: OwnerKey): string {
  return ownerUdf(certificatePublicPoint(key.ownerCaCertificate));
}

/** A one-time invitation (`rdi1.…`) for one new device, valid for 24 hours. */
export async function createPairingInvitation(
  key: OwnerKey,
): Promise<{ invitation: string; expires: string }> {
  const reply = await callGateway<{ invite: string; expires: string }>(
    ownerClient(key),
    'POST',
    '/v1/owner/pairing-invites',
    {},
  );
  const invitation: PairingInvitation = {
    gateway: key.gateway,
    ...(key.gatewayCa !== null
      ? { ca: Buffer.from(pemToDer(key.gatewayCa)).toString('base64') }
      : {}),
    address: key.address,
    udf: ownerUdfOf(key),
    invite: reply.invite,
    key: pairingInvitationKey(key.ownerCaSecret, reply.invite),
  };
  return { invitation: encodePairingInvitation(invitation), expires: reply.expires };
}

export interface PendingPairing {
  id: string;
  name: string;
  client: 'standard' | 'outlook';
  /** Computed here from what the gateway relayed; compare it with the device's screen. */
  shortCode: string;
  /**
   * The request carries a valid MAC with the key of one of your invitations. false: it
   * was not made by anyone holding your invitation (the gateway included); never approved.
   */
  fromInvitation: boolean;
  created: string;
  expires: string;
  certificateRequest: Uint8Array;
  sealedAlpha: string;
}

interface RelayedRequest {
  id: string;
  name: string;
  client: 'standard' | 'outlook';
  certificateRequest: string;
  sealedAlpha: string;
  invite: string;
  tag: string;
  created: string;
  expires: string;
}

export async function listPendingPairings(key: OwnerKey): Promise<PendingPairing[]> {
  const reply = await callGateway<{ requests: RelayedRequest[] }>(
    ownerClient(key),
    'GET',
    '/v1/owner/pairing-requests',
  );
  const udf = ownerUdfOf(key);
  return reply.requests.map((r) => {
    const certificateRequest = new Uint8Array(Buffer.from(r.certificateRequest, 'base64'));
    const expected = pairingRequestTag(pairingInvitationKey(key.ownerCaSecret, r.invite), {
      address: key.address,
      name: r.name,
      client: r.client,
      certificateRequest,
      sealedAlpha: r.sealedAlpha,
    });
    return {
      id: r.id,
      name: r.name,
      client: r.client,
      created: r.created,
      expires: r.expires,
      sealedAlpha: r.sealedAlpha,
      certificateRequest,
      shortCode: pairingShortCode(udf, certificateRequest, r.sealedAlpha, r.client),
      fromInvitation: sameTag(r.tag, expected),
    };
  });
}

async function findByCode(key: OwnerKey, code: string): Promise<PendingPairing> {
  const match = (await listPendingPairings(key)).filter((p) => sameShortCode(code, p.shortCode));
  if (match.length !== 1)
    throw new OwnerError(
      'invalid-argument',
      `no pending pairing request shows the code ${JSON.stringify(code)} (see \`recrypt device list --pending\`)`,
    );
  return match[0]!;
}

/** Approves the request whose short code is `code`; the device then fetches its certificate. */
export async function approvePairing(
  key: OwnerKey,
  code: string,
  now: Date = new Date(),
): Promise<DeviceView> {
  const pending = await findByCode(key, code);
  if (!pending.fromInvitation)
    throw new OwnerError(
      'invalid-argument',
      'this pairing request was not made with one of your invitations; refuse it',
    );
  let request;
  try {
    request = await readDeviceRequest(pending.certificateRequest);
  } catch {
    throw new OwnerError('invalid-argument', 'the device certificate request does not verify');
  }
  if (request.name !== pending.name)
    throw new OwnerError('invalid-argument', 'the device certificate request names another device');
  let alpha;
  try {
    const groupId = Buffer.from(recipientIdOf(key.groupCertificate)).toString('hex');
    alpha = openAlpha(pending.sealedAlpha, key.groupSecret, groupId, 'device-pairing');
  } catch {
    throw new OwnerError(
      'invalid-argument',
      'the pairing request was not sealed to your group key',
    );
  }
  const beta = ownerRespond(key.groupSecret, alpha);
  const certificate = await issueDeviceCertificate({
    ca: key.ownerCaCertificate,
    caSecret: key.ownerCaSecret,
    publicKey: request.point,
    address: key.address,
    name: request.name,
    now,
  });
  const reply = await callGateway<{ device: DeviceView }>(
    ownerClient(key),
    'POST',
    `/v1/owner/pairing-requests/${pending.id}/approve`,
    {
      beta: Buffer.from(scalarToBytes(beta)).toString('base64'),
      certificate: Buffer.from(certificate).toString('base64'),
      // β_i = g_i·α for every group the mailbox had before a rotation: old mail reads too.
      ...((key.formerGroups ?? []).length > 0
        ? {
            formerBetas: key.formerGroups!.map((group) => ({
              groupId: Buffer.from(recipientIdOf(group.groupCertificate)).toString('hex'),
              beta: Buffer.from(scalarToBytes(ownerRespond(group.groupSecret, alpha))).toString(
                'base64',
              ),
            })),
          }
        : {}),
    },
  );
  return reply.device;
}

/** Refuses (deletes) the request whose short code is `code`. */
export async function refusePairing(key: OwnerKey, code: string): Promise<PendingPairing> {
  const pending = await findByCode(key, code);
  await callGateway(ownerClient(key), 'DELETE', `/v1/owner/pairing-requests/${pending.id}`);
  return pending;
}
