/**
 * One harvested certificate as stored (JSON, the same in SQLite and Redis). A record that
 * does not parse is skipped by the readers, never trusted in part.
 */
import { z } from 'zod';
import type { HarvestedCertificate } from './types.js';

const recordSchema = z.strictObject({
  address: z.string().min(3).max(254),
  domain: z.string().min(1).max(253),
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  der: z.base64().max(16 * 1024),
  keyType: z.enum(['rsa', 'ec-p256']),
  notBefore: z.number().int(),
  notAfter: z.number().int(),
  seenAt: z.number().int(),
  rsaKeyTransport: z.enum(['rsa-pkcs1', 'rsa-oaep-sha1', 'rsa-oaep-sha256']).optional(),
});

export function encodeRecord(certificate: HarvestedCertificate): string {
  return JSON.stringify({
    address: certificate.address,
    domain: certificate.domain,
    fingerprint: certificate.fingerprint,
    der: Buffer.from(certificate.der).toString('base64'),
    keyType: certificate.keyType,
    notBefore: certificate.notBefore.getTime(),
    notAfter: certificate.notAfter.getTime(),
    seenAt: certificate.seenAt.getTime(),
    ...(certificate.rsaKeyTransport === undefined
      ? {}
      : { rsaKeyTransport: certificate.rsaKeyTransport }),
  });
}

/** The certificate, or null for a record that is not one. */
export function decodeRecord(text: string): HarvestedCertificate | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) return null;
  const r = parsed.data;
  return {
    address: r.address,
    domain: r.domain,
    fingerprint: r.fingerprint,
    der: new Uint8Array(Buffer.from(r.der, 'base64')),
    keyType: r.keyType,
    notBefore: new Date(r.notBefore),
    notAfter: new Date(r.notAfter),
    seenAt: new Date(r.seenAt),
    ...(r.rsaKeyTransport === undefined ? {} : { rsaKeyTransport: r.rsaKeyTransport }),
  };
}
