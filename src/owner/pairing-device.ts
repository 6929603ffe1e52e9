/**
 * The new device's side of a pairing (docs/cli.md "Pairing a device"), as a library for
 * `recrypt device join` and for other device programs. The device makes its own key d
 * and IMAP password here and never sends either: the gateway gets D (in a signed
 * certificate request), τ = t⁻¹ and the password's hash; the owner gets α = t·d⁻¹,
 * sealed to the owner's group key, which the device first checks against the owner's
 * UDF fingerprint from the invitation.
 *
 *   const pending = await startPairing(invitationText, { name: 'phone' });
 *   show(pending.shortCode);                      // the owner compares it
 *   const done = await waitForPairing(pending);   // the owner approved
 *   const files = await writePairedDevice(pending, done, { outDir: '.' });
 *
 * `pending` holds d in memory only; if the process ends before the approval, the owner
 * refuses the request (or lets it expire) and the device starts again.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { hashDeviceCredential } from '../keystore/index.js';
import {
  buildDeviceRequest,
  blindDeviceSecret,
  buildDevicePkcs12,
  certificatePublicPoint,
  publicPoint,
  randomScalar,
  recipientIdOf,
  scalarToBytes,
  type ClientKind,
  type Scalar,
} from '../recrypt/index.js';
import { ownerUdf } from '../profiles/index.js';
import { generatePassword, type ImapSettings } from './common.js';
import { checkDeviceName, type DeviceView } from './devices.js';
import { OwnerError } from './errors.js';
import { commitTemp, writeTemp } from './files.js';
import { callGateway, type GatewayClientOptions } from './gateway-client.js';
import { sealAlpha } from './list-join.js';
import {
  decodePairingInvitation,
  pairingRequestTag,
  pairingShortCode,
  type PairingInvitation,
} from './pairing-wire.js';
import { invitationTrust } from './remote-join.js';

export interface PendingDevicePairing {
  invitation: PairingInvitation;
  requestId: string;
  /** Show it; the owner approves the request that shows the same code. */
  shortCode: string;
  name: string;
  client: ClientKind;
  expires: string;
  /** The device secret d: in memory only, until it goes into the device's own .p12. */
  deviceSecret: Scalar;
  /** The device's IMAP password (the gateway holds only its hash). */
  devicePassword: string;
  /** What the device fetches its certificate with (the gateway holds only its hash). */
  pickup: string;
  /** The owner CA certificate, checked against the invitation's UDF. */
  ownerCaCertificate: Uint8Array;
}

export interface ApprovedDevicePairing {
  certificate: Uint8Array;
  device: DeviceView;
  username: string;
  imap: ImapSettings;
}

function clientOf(invitation: PairingInvitation): GatewayClientOptions {
  return {
    gateway: invitation.gateway,
    ca: invitationTrust({ ...invitation, list: '', member: '' })?.pem ?? null,
    auth: { kind: 'none' },
  };
}

/** The owner's certificates as the gateway gives them, checked against the invitation. */
function checkOwnerKeys(
  invitation: PairingInvitation,
  reply: { ownerCaCertificate: string; groupCertificate: string },
): { ca: Uint8Array; group: Uint8Array } {
  const refuse = (why: string) =>
    new OwnerError('gateway-refused', `the gateway's answer does not hold: ${why}`);
  const ca = new Uint8Array(Buffer.from(reply.ownerCaCertificate, 'base64'));
  const group = new Uint8Array(Buffer.from(reply.groupCertificate, 'base64'));
  let caCert: X509Certificate;
  let groupCert: X509Certificate;
  try {
    caCert = new X509Certificate(Buffer.from(ca));
    groupCert = new X509Certificate(Buffer.from(group));
  } catch {
    throw refuse('not certificates');
  }
  if (ownerUdf(certificatePublicPoint(ca)) !== invitation.udf)
    throw refuse("the owner CA is not the one the invitation's fingerprint names");
  if (!groupCert.checkIssued(caCert) || !groupCert.verify(caCert.publicKey))
    throw refuse('the group certificate is not issued by the owner CA');
  const names = (groupCert.subjectAltName ?? '').toLowerCase().split(/,\s*/);
  if (!names.includes(`email:${invitation.address.toLowerCase()}`))
    throw refuse('the group certificate names another address');
  return { ca, group };
}

/** Makes d, the certificate request and the blinded request, and leaves it with the gateway. */
export async function startPairing(
  invitationText: string,
  options: { name: string; client?: ClientKind },
): Promise<PendingDevicePairing> {
  const invitation = decodePairingInvitation(invitationText);
  const name = checkDeviceName(options.name);
  const client = options.client ?? 'standard';
  const gateway = clientOf(invitation);
  const keys = await callGateway<{ ownerCaCertificate: string; groupCertificate: string }>(
    gateway,
    'POST',
    '/v1/pairing/owner',
    { address: invitation.address, invite: invitation.invite },
  );
  const { ca, group } = checkOwnerKeys(invitation, keys);
  const groupId = Buffer.from(recipientIdOf(group)).toString('hex');
  const deviceSecret = randomScalar();
  const certificateRequest = await buildDeviceRequest(deviceSecret, name);
  const blinded = blindDeviceSecret(deviceSecret);
  const sealedAlpha = sealAlpha(
    blinded.toOwner,
    certificatePublicPoint(group),
    groupId,
    'device-pairing',
  );
  const devicePassword = generatePassword();
  const pickup = randomBytes(24).toString('base64url');
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  const reply = await callGateway<{ id: string; expires: string }>(
    gateway,
    'POST',
    '/v1/pairing/requests',
    {
      address: invitation.address,
      invite: invitation.invite,
      name,
      client,
      certificateRequest: b64(certificateRequest),
      sealedAlpha,
      groupId,
      tau: b64(scalarToBytes(blinded.toGateway)),
      credentialHash: await hashDeviceCredential(devicePassword, invitation.address),
      pickupHash: createHash('sha256').update(pickup).digest('hex'),
      tag: pairingRequestTag(invitation.key, {
        address: invitation.address,
        name,
        client,
        certificateRequest,
        sealedAlpha,
      }),
    },
  );
  return {
    invitation,
    requestId: reply.id,
    shortCode: pairingShortCode(invitation.udf, certificateRequest, sealedAlpha, client),
    name,
    client,
    expires: reply.expires,
    deviceSecret,
    devicePassword,
    pickup,
    ownerCaCertificate: ca,
  };
}

/** One look: null while the owner has not approved; OwnerError once it is refused or gone. */
export async function checkPairing(
  pending: PendingDevicePairing,
): Promise<ApprovedDevicePairing | null> {
  const reply = await callGateway<{
    state: 'pending' | 'approved';
    certificate?: string;
    device?: DeviceView;
    username?: string;
    imap?: ImapSettings;
  }>(clientOf(pending.invitation), 'POST', `/v1/pairing/requests/${pending.requestId}/status`, {
    address: pending.invitation.address,
    pickup: pending.pickup,
  });
  if (reply.state === 'pending') return null;
  const certificate = new Uint8Array(Buffer.from(reply.certificate ?? '', 'base64'));
  let point: Uint8Array;
  try {
    point = certificatePublicPoint(certificate);
  } catch {
    throw new OwnerError('gateway-refused', 'the gateway answered with no usable certificate');
  }
  if (!Buffer.from(point).equals(Buffer.from(publicPoint(pending.deviceSecret))))
    throw new OwnerError(
      'gateway-refused',
      'the certificate the gateway sent is not for this device',
    );
  const caCert = new X509Certificate(Buffer.from(pending.ownerCaCertificate));
  if (!new X509Certificate(Buffer.from(certificate)).verify(caCert.publicKey))
    throw new OwnerError('gateway-refused', 'the certificate is not issued by the owner CA');
  return {
    certificate,
    device: reply.device!,
    username: reply.username!,
    imap: reply.imap!,
  };
}

/** Asks every `intervalMs` until the owner approved or `timeoutMs` passed. */
export async function waitForPairing(
  pending: PendingDevicePairing,
  options: { intervalMs?: number; timeoutMs?: number } = {},
): Promise<ApprovedDevicePairing> {
  const deadline = Date.now() + (options.timeoutMs ?? 15 * 60_000);
  for (;;) {
    const done = await checkPairing(pending);
    if (done !== null) return done;
    if (Date.now() >= deadline)
      throw new OwnerError(
        'gateway-refused',
        'the owner has not approved in time; start again with a new invitation',
      );
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 3000));
  }
}

export interface PairedDeviceFiles {
  p12File: string;
  /** Shown once; the .p12 is encrypted with it. */
  p12Password: string;
  devicePassword: string;
  username: string;
  imap: ImapSettings;
  device: DeviceView;
}

/** Writes the device's own .p12 (d, its certificate, the owner CA) as `<outDir>/<name>.p12`. */
export async function writePairedDevice(
  pending: PendingDevicePairing,
  approved: ApprovedDevicePairing,
  options: { outDir?: string } = {},
): Promise<PairedDeviceFiles> {
  const p12File = join(options.outDir ?? '.', `${pending.name}.p12`);
  if (existsSync(p12File))
    throw new OwnerError('exists', `${p12File} already exists; not overwriting it (use --out)`);
  const p12Password = generatePassword();
  const p12 = await buildDevicePkcs12({
    deviceSecret: pending.deviceSecret,
    certificate: approved.certificate,
    caCertificates: [pending.ownerCaCertificate],
    password: p12Password,
    friendlyName: `${pending.invitation.address} (${pending.name})`,
  });
  commitTemp(writeTemp(p12File, p12), p12File);
  return {
    p12File,
    p12Password,
    devicePassword: pending.devicePassword,
    username: approved.username,
    imap: approved.imap,
    device: approved.device,
  };
}
