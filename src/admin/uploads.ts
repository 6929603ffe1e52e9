/**
 * Checks on what an owner's CLI uploads, before anything is stored: certificates that
 * parse, chain to the owner's CA and name the owner's address; recipient identifiers of
 * the one fixed length the in-place transform needs; and a recryption key that really
 * maps this device's key to the owner's group (rk·D = G), so a typo or a hostile client
 * cannot plant a key that recrypts to garbage.
 */
import { X509Certificate } from 'node:crypto';
import {
  certificatePublicPoint,
  multiplyPoint,
  recipientIdOf,
  scalarFromBytes,
  spkiOfPoint,
  type Scalar,
} from '../recrypt/index.js';
import { HttpError } from './http.js';

function parseCertificate(der: Uint8Array, field: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(der));
  } catch {
    throw new HttpError(400, `${field}: not a DER X.509 certificate`);
  }
}

function namesAddress(cert: X509Certificate, address: string): boolean {
  const wanted = address.toLowerCase();
  return (cert.subjectAltName ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .some((entry) => entry.toLowerCase() === `email:${wanted}`);
}

export interface CheckedOwnerUpload {
  ownerCaCertificate: Uint8Array;
  groupCertificate: Uint8Array;
  groupId: string;
  ownerKeySpki: Uint8Array;
}

export function checkOwnerUpload(
  address: string,
  ownerCaCertificate: Uint8Array,
  groupCertificate: Uint8Array,
): CheckedOwnerUpload {
  const ca = parseCertificate(ownerCaCertificate, 'ownerCaCertificate');
  const group = parseCertificate(groupCertificate, 'groupCertificate');
  if (!ca.ca || !ca.verify(ca.publicKey)) {
    throw new HttpError(400, 'ownerCaCertificate: not a self-signed CA certificate');
  }
  if (!group.checkIssued(ca) || !group.verify(ca.publicKey)) {
    throw new HttpError(400, 'groupCertificate: not issued by the owner CA');
  }
  if (!namesAddress(group, address)) {
    throw new HttpError(400, 'groupCertificate: does not name the account address');
  }
  let ownerKeySpki: Uint8Array;
  try {
    ownerKeySpki = spkiOfPoint(certificatePublicPoint(ownerCaCertificate));
    certificatePublicPoint(groupCertificate);
  } catch {
    throw new HttpError(400, 'certificates: keys must be P-256');
  }
  return {
    ownerCaCertificate,
    groupCertificate,
    groupId: Buffer.from(recipientIdOf(groupCertificate)).toString('hex'),
    ownerKeySpki,
  };
}

export interface CheckedDeviceUpload {
  certificate: Uint8Array;
  deviceId: string;
  rk: Scalar;
}

export function checkDeviceUpload(
  address: string,
  owner: { ownerCaCertificate: Uint8Array; groupCertificate: Uint8Array; groupId: string },
  certificate: Uint8Array,
  rkBytes: Uint8Array,
): CheckedDeviceUpload {
  const ca = parseCertificate(owner.ownerCaCertificate, 'ownerCaCertificate');
  const device = parseCertificate(certificate, 'certificate');
  if (!device.checkIssued(ca) || !device.verify(ca.publicKey)) {
    throw new HttpError(400, 'certificate: not issued by the owner CA');
  }
  if (!namesAddress(device, address)) {
    throw new HttpError(400, 'certificate: does not name the account address');
  }
  const deviceId = Buffer.from(recipientIdOf(certificate)).toString('hex');
  if (deviceId.length !== owner.groupId.length) {
    throw new HttpError(
      400,
      'certificate: its issuer and serial differ in length from the group certificate',
    );
  }
  let rk: Scalar;
  try {
    rk = scalarFromBytes(rkBytes);
  } catch {
    throw new HttpError(400, 'rk: not a P-256 scalar');
  }
  let mapsToGroup: boolean;
  try {
    const devicePoint = certificatePublicPoint(certificate);
    const groupPoint = certificatePublicPoint(owner.groupCertificate);
    mapsToGroup = Buffer.from(multiplyPoint(devicePoint, rk)).equals(Buffer.from(groupPoint));
  } catch {
    mapsToGroup = false;
  }
  if (!mapsToGroup) throw new HttpError(400, 'rk: does not map this device key to the group key');
  return { certificate, deviceId, rk };
}
