/**
 * A device's side of a full rotation (`recrypt device rekey`, docs/design.md §6): with its
 * own .p12 (d never leaves it) and its IMAP password, it fetches the pending group
 * certificate, checks that the owner CA which issued its own certificate issued it for
 * its address (a gateway that swapped in a key of its own would open α and, with τ, learn
 * d⁻¹), and sends the blinded-issue request: α = t·d⁻¹ sealed to G′, τ = t⁻¹, and a MAC
 * under x(d·C) the owner checks.
 */
import { X509Certificate } from 'node:crypto';
import {
  blindDeviceSecret,
  certificatePublicPoint,
  readPkcs12,
  recipientIdOf,
  scalarToBytes,
} from '../recrypt/index.js';
import { OwnerError } from './errors.js';
import { callGateway, type GatewayClientOptions } from './gateway-client.js';
import { sealAlpha } from './list-join.js';
import { rekeyMac } from './rekey-wire.js';

export interface RekeyOptions {
  /** The device's .p12 (DER) and its password. */
  p12: Uint8Array;
  p12Password: string;
  /** The device's IMAP password: it authenticates the request to the gateway. */
  devicePassword: string;
  gateway: string;
  /** PEM the gateway's TLS certificate chains to, when self-signed. */
  ca: string | null;
}

export interface RekeyResult {
  address: string;
  groupId: string;
  device: string;
}

function addressOf(certificate: X509Certificate): string {
  const email = (certificate.subjectAltName ?? '')
    .split(/,\s*/)
    .find((entry) => entry.toLowerCase().startsWith('email:'));
  if (email === undefined)
    throw new OwnerError('invalid-argument', 'the .p12 certificate names no address');
  return email.slice('email:'.length);
}

/** The pending group certificate, checked against the CA that issued the device's own. */
function checkGroup(
  device: X509Certificate,
  address: string,
  reply: { groupCertificate: string; ownerCaCertificate: string },
): Uint8Array {
  const refuse = (why: string) =>
    new OwnerError('gateway-refused', `the gateway's answer does not hold: ${why}`);
  const group = new Uint8Array(Buffer.from(reply.groupCertificate, 'base64'));
  let ca: X509Certificate;
  let groupCert: X509Certificate;
  try {
    ca = new X509Certificate(Buffer.from(reply.ownerCaCertificate, 'base64'));
    groupCert = new X509Certificate(Buffer.from(group));
  } catch {
    throw refuse('not certificates');
  }
  if (!device.checkIssued(ca) || !device.verify(ca.publicKey))
    throw refuse('the owner CA is not the one that issued this device');
  if (!groupCert.checkIssued(ca) || !groupCert.verify(ca.publicKey))
    throw refuse('the new group certificate is not issued by the owner CA');
  const names = (groupCert.subjectAltName ?? '').toLowerCase().split(/,\s*/);
  if (!names.includes(`email:${address.toLowerCase()}`))
    throw refuse('the new group certificate names another address');
  return group;
}

export async function rekeyDevice(options: RekeyOptions): Promise<RekeyResult> {
  const p12 = await readPkcs12(options.p12, options.p12Password);
  const device = new X509Certificate(Buffer.from(p12.certificate));
  const address = addressOf(device);
  const client: GatewayClientOptions = {
    gateway: options.gateway,
    ca: options.ca,
    auth: { kind: 'none' },
  };
  const credentials = { address, password: options.devicePassword };
  const pending = await callGateway<{
    groupId: string;
    groupCertificate: string;
    ownerCaCertificate: string;
  }>(client, 'POST', '/v1/device/rotation', credentials);
  const group = checkGroup(device, address, pending);
  const groupId = Buffer.from(recipientIdOf(group)).toString('hex');
  const blinded = blindDeviceSecret(p12.deviceSecret);
  const sealedAlpha = sealAlpha(
    blinded.toOwner,
    certificatePublicPoint(group),
    groupId,
    'device-rekey',
  );
  const caPoint = certificatePublicPoint(
    new Uint8Array(Buffer.from(pending.ownerCaCertificate, 'base64')),
  );
  const mac = rekeyMac(caPoint, p12.deviceSecret, {
    address,
    groupId,
    deviceId: Buffer.from(recipientIdOf(p12.certificate)).toString('hex'),
    sealedAlpha,
  });
  const reply = await callGateway<{ device: string }>(client, 'POST', '/v1/device/rekey', {
    ...credentials,
    groupId,
    sealedAlpha,
    tau: Buffer.from(scalarToBytes(blinded.toGateway)).toString('base64'),
    mac,
  });
  return { address, groupId, device: reply.device };
}
