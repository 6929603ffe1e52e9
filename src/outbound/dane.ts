/**
 * DANE for SMTP (RFC 7672; docs/outbound.md "MTA-STS and DANE"): one delivery attempt to
 * an MX host that has DNSSEC-validated TLSA records (transport-security.ts found them).
 * STARTTLS is required; the certificate chain the server presents must match a record
 * before anything of the message is sent:
 *
 * * usage 3 (DANE-EE): the server's own certificate (selector 0) or its public key
 *   (selector 1) matches; names and dates are not checked (RFC 7672 §3.1.1);
 * * usage 2 (DANE-TA): a certificate of the presented chain matches, the chain from the
 *   server's certificate up to it verifies (signatures, dates), and the server's
 *   certificate names the MX host (RFC 7672 §3.2.2).
 * Matching types: 0 exact, 1 SHA-256, 2 SHA-512 (RFC 6698 §2.1.3). Anything else matches
 * nothing.
 *
 * Node checks a chain against CAs only, so the check runs on nodemailer's SMTPConnection
 * after its STARTTLS (its `_socket`, typed public) and before MAIL FROM; nodemailer's
 * sendMail offers no such point.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import DKIM from 'nodemailer/lib/dkim/index.js';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import type { CertificateAssociation } from '../dns/index.js';
import type { Hop } from './routing.js';

export interface DaneAttempt {
  hop: Hop & { require: { kind: 'dane'; tlsa: CertificateAssociation[] } };
  heloName: string;
  connectTimeout: number;
  greetingTimeout: number;
  socketTimeout: number;
  mailFrom: string;
  to: string;
  message: { path: string } | Buffer;
  dkim?: { domainName: string; keySelector: string; privateKey: string };
}

export class DaneMismatch extends Error {}

function associated(certificate: X509Certificate, record: CertificateAssociation): boolean {
  const selected =
    record.selector === 0
      ? certificate.raw
      : record.selector === 1
        ? certificate.publicKey.export({ type: 'spki', format: 'der' })
        : null;
  if (selected === null) return false;
  const value =
    record.matchingType === 0
      ? selected
      : record.matchingType === 1
        ? createHash('sha256').update(selected).digest()
        : record.matchingType === 2
          ? createHash('sha512').update(selected).digest()
          : null;
  return value !== null && value.equals(record.data);
}

/** Whether the presented chain (server's certificate first) satisfies one of the records. */
export function daneMatches(
  chain: X509Certificate[],
  records: CertificateAssociation[],
  host: string,
  now = Date.now(),
): boolean {
  const leaf = chain[0];
  if (leaf === undefined) return false;
  if (records.some((record) => record.usage === 3 && associated(leaf, record))) return true;
  const anchors = records.filter((record) => record.usage === 2);
  if (anchors.length === 0 || leaf.checkHost(host) === undefined) return false;
  for (let at = 0; at < chain.length; at++) {
    const certificate = chain[at]!;
    if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) <= now)
      return false;
    if (anchors.some((record) => associated(certificate, record))) return true;
    const issuer = chain[at + 1];
    if (
      issuer === undefined ||
      !certificate.checkIssued(issuer) ||
      !certificate.verify(issuer.publicKey)
    )
      return false;
  }
  return false;
}

/** The peer's chain as presented, server's certificate first (bounded by its length). */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let current = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (current?.raw !== undefined && chain.length < 10) {
    const key = current.fingerprint256;
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}

/** Sends over a DANE-verified connection; throws nodemailer's errors or DaneMismatch. */
export async function sendWithDane(
  attempt: DaneAttempt,
  track: (c: { close(): void }) => void,
): Promise<string> {
  const { hop } = attempt;
  const connection = new SMTPConnection({
    host: hop.address ?? hop.host,
    port: hop.port,
    name: attempt.heloName,
    requireTLS: true,
    opportunisticTLS: false,
    // The chain is checked against the TLSA records below, not against CAs.
    tls: { rejectUnauthorized: false, servername: hop.host },
    connectionTimeout: attempt.connectTimeout,
    greetingTimeout: attempt.greetingTimeout,
    socketTimeout: attempt.socketTimeout,
    logger: false,
  });
  track(connection);
  const failed = new Promise<never>((_, reject) => connection.once('error', reject));
  failed.catch(() => undefined);
  await Promise.race([
    new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(error) : resolve())),
    ),
    failed,
  ]);
  const socket = connection._socket;
  if (
    !(socket instanceof TLSSocket) ||
    !daneMatches(presentedChain(socket), hop.require.tlsa, hop.host)
  ) {
    connection.quit();
    throw new DaneMismatch(`${hop.host}: DANE: the certificate matches no TLSA record`);
  }
  let body: Readable = Buffer.isBuffer(attempt.message)
    ? Readable.from([attempt.message])
    : createReadStream(attempt.message.path);
  if (attempt.dkim !== undefined) body = new DKIM(attempt.dkim).sign(body);
  const reply = await Promise.race([
    new Promise<string>((resolve, reject) =>
      connection.send({ from: attempt.mailFrom, to: [attempt.to] }, body, (error, info) =>
        error ? reject(error) : resolve(info.response ?? '250'),
      ),
    ),
    failed,
  ]);
  connection.quit();
  return reply;
}
