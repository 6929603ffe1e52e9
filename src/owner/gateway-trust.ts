/**
 * How the owner's tool trusts the gateway's TLS certificate, given the PEM kept in the
 * owner key file (`gatewayCa`):
 *  - none: the system's trust store and the host name (a CA-issued certificate, ACME);
 *  - a CA certificate that issued the served one: ordinary verification, host name checked;
 *  - a self-signed certificate the gateway serves (the one it generates, or one an
 *    operator made): trusted by its public key, not by its bytes. The served certificate
 *    must carry the same SubjectPublicKeyInfo; then that certificate is trusted for the
 *    request, whatever names it holds. A gateway
 *    that re-issues its certificate with the same key (renewal, a new host name) keeps
 *    its owners; one with a new key is refused with the command that re-points the key
 *    file after the owner checked the new certificate (`recrypt owner gateway`).
 * The key is compared on a probe connection before any request byte is sent, so an
 * enrolment token or a signed request never reaches a server with another key.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { connect, type PeerCertificate } from 'node:tls';
import { OwnerError } from './errors.js';

export interface TlsTrust {
  ca?: string;
  checkServerIdentity?: () => undefined;
}

/** The pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo (as RFC 7469). */
export function publicKeyPin(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** The certificate in `pem` when it is self-signed (a CA root or a gateway's own); else null. */
export function selfSigned(pem: string): X509Certificate | null {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch {
    throw new OwnerError('invalid-argument', 'the gateway CA file is not a PEM certificate');
  }
  // By name and signature (checkIssued would also demand keyCertSign, which a TLS server
  // certificate does not have).
  return certificate.subject === certificate.issuer && certificate.verify(certificate.publicKey)
    ? certificate
    : null;
}

function servedCertificate(
  host: string,
  port: number,
  servername: string | undefined,
  timeoutMs: number,
): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ...(servername !== undefined ? { servername } : {}),
      // Only to read the certificate: its key is compared below, nothing is sent.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timed out'));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const peer = socket.getPeerCertificate();
      socket.end();
      if (peer === null || peer.raw === undefined) reject(new Error('no certificate served'));
      else resolve(peer);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export async function tlsTrustFor(
  ca: string | null | undefined,
  origin: URL,
  timeoutMs: number,
): Promise<TlsTrust> {
  if (ca === null || ca === undefined) return {};
  const pinned = selfSigned(ca);
  if (pinned === null) return { ca };
  const host = origin.hostname.replace(/^\[|\]$/g, '');
  const port = origin.port === '' ? 443 : Number(origin.port);
  let peer: PeerCertificate;
  try {
    peer = await servedCertificate(
      host,
      port,
      /^[\d.:]+$/.test(host) ? undefined : host,
      timeoutMs,
    );
  } catch (error) {
    throw new OwnerError(
      'gateway-unreachable',
      `cannot reach the gateway at ${origin.origin}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const served = new X509Certificate(peer.raw);
  const expected = publicKeyPin(pinned);
  const actual = publicKeyPin(served);
  // A CA root that issued the served certificate: ordinary verification from here on.
  if (actual !== expected && served.issuer === pinned.subject && served.verify(pinned.publicKey))
    return { ca };
  if (actual !== expected) {
    throw new OwnerError(
      'gateway-identity-changed',
      `the gateway at ${origin.origin} presents another TLS key (sha256 ${actual}, expected ${expected}); ` +
        `if its operator changed it, check the new certificate with them and run ` +
        `\`recrypt owner gateway ${origin.origin} --ca <new-certificate.pem>\``,
    );
  }
  // The key is the identity: the host name in the certificate does not matter.
  return { ca: served.toString(), checkServerIdentity: () => undefined };
}
