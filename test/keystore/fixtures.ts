/** Fixture data for the key-store tests: DER files, their RecipientIds, fresh addresses. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Certificate, IssuerAndSerialNumber } from 'pkijs';
import type { OwnerCertificates } from '../../src/keystore/index.js';
import { P256_ORDER } from '../../src/keystore/validate.js';

const dir = fileURLToPath(new URL('../fixtures/keystore/', import.meta.url));

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(dir + name));
}

/** The certificate's CMS IssuerAndSerialNumber DER, lowercase hex (a RecipientId). */
export function recipientIdHex(certificateDer: Uint8Array): string {
  const cert = Certificate.fromBER(certificateDer);
  const ias = new IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber });
  return Buffer.from(ias.toSchema().toBER(false)).toString('hex');
}

/** An opaque RecipientId-shaped hex value, for devices beyond the fixture certificates. */
export function randomRecipientIdHex(): string {
  return `3024${randomBytes(36).toString('hex')}`;
}

export function randomScalar(): bigint {
  for (;;) {
    const v = BigInt(`0x${randomBytes(32).toString('hex')}`);
    if (v > 0n && v < P256_ORDER) return v;
  }
}

export function uniqueAddress(tag = 'user'): string {
  return `${tag}-${randomBytes(5).toString('hex')}@Example.ORG`;
}

export function ownerCertificates(): OwnerCertificates {
  const groupCertificate = fixture('group.der');
  return {
    ownerCaCertificate: fixture('owner-ca.der'),
    groupCertificate,
    groupId: recipientIdHex(groupCertificate),
    ownerKeySpki: fixture('owner-key.spki.der'),
  };
}
