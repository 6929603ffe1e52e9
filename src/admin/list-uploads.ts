/**
 * Checks on a list group certificate a list owner uploads (at create and at rotation):
 * it parses, is issued by the list owner's CA, names the list address, holds a P-256
 * key, and its RecipientId has the one fixed length the in-place transform needs.
 */
import { X509Certificate } from 'node:crypto';
import { certificatePublicPoint, recipientIdOf } from '../recrypt/index.js';
import { HttpError } from './http.js';

/** The certificate's RecipientId (hex), or a 400 saying what is wrong. */
export function checkListCertificate(
  listAddress: string,
  owner: { ownerCaCertificate: Uint8Array; groupId: string },
  certificate: Uint8Array,
): string {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(certificate));
    ca = new X509Certificate(Buffer.from(owner.ownerCaCertificate));
  } catch {
    throw new HttpError(400, 'groupCertificate: not a DER X.509 certificate');
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
    throw new HttpError(400, "groupCertificate: not issued by the list owner's CA");
  const wanted = `email:${listAddress.toLowerCase()}`;
  const names = (cert.subjectAltName ?? '').split(',').map((e) => e.trim().toLowerCase());
  if (!names.includes(wanted))
    throw new HttpError(400, 'groupCertificate: does not name the list address');
  try {
    certificatePublicPoint(certificate);
  } catch {
    throw new HttpError(400, 'groupCertificate: key must be P-256');
  }
  const groupId = Buffer.from(recipientIdOf(certificate)).toString('hex');
  if (groupId.length !== owner.groupId.length)
    throw new HttpError(400, 'groupCertificate: its issuer and serial have the wrong length');
  return groupId;
}
