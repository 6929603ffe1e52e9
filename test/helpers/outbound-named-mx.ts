/**
 * For the MTA-STS and DANE tests: MX hosts found through DNS, so reached on port 25. Each
 * listens on its own loopback address (127.x.y.z: the whole 127/8 is this host's, so
 * tests running at once do not collide; port 25 needs root, which CI has; IPv6 has only
 * `::1`, which test/outbound/ipv6.test.ts alone takes) with a given certificate for
 * STARTTLS; and an HTTPS server answering MTA-STS policy requests by their Host name.
 */
import { createHash, randomInt, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { SMTPServer } from 'smtp-server';
import type { ReceivedMail } from './outbound-remote.js';
import type { TestCertificate } from './tls-pki.js';

/** SHA-256 of a certificate's SubjectPublicKeyInfo (hex): a TLSA `3 1 1` record's data. */
export function spkiSha256(der: Buffer): string {
  return createHash('sha256')
    .update(new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** A loopback /24 for one test file: `${prefix}N`. */
export function loopbackPrefix(): string {
  return `127.${randomInt(20, 250)}.${randomInt(1, 250)}.`;
}

export interface NamedMx {
  address: string;
  received: ReceivedMail[];
  /** Every RCPT TO seen, accepted or not. */
  recipients: string[];
  close(): Promise<void>;
}

export async function startNamedMx(
  address: string,
  certificate: TestCertificate,
  /** The reply to every RCPT TO, e.g. [451, '4.3.0 busy']; default: accepted. */
  rcptReply?: [number, string],
): Promise<NamedMx> {
  const received: ReceivedMail[] = [];
  const recipients: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    key: certificate.key,
    cert: certificate.cert,
    onRcptTo(rcpt, _session, callback) {
      recipients.push(rcpt.address);
      if (rcptReply === undefined) return callback();
      callback(Object.assign(new Error(rcptReply[1]), { responseCode: rcptReply[0] }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({
          mailFrom: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
          bytes: Buffer.concat(chunks),
          secure: session.secure,
          ...(typeof session.servername === 'string' ? { servername: session.servername } : {}),
          ehlo: session.hostNameAppearsAs,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(25, address, () => resolve());
  });
  return {
    address,
    received,
    recipients,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface PolicyServer {
  /** "127.0.0.1:port", as `outbound.mtaSts.origins` takes it. */
  origin: string;
  /** Policy requests seen, by Host. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `policies[host]` at /.well-known/mta-sts.txt for Host `host`; 404 otherwise. */
export async function startPolicyServer(
  certificate: TestCertificate,
  policies: Record<string, string>,
): Promise<PolicyServer> {
  const requests: string[] = [];
  const server: Server = createServer(
    { key: certificate.key, cert: certificate.cert },
    (req, res) => {
      const host = (req.headers.host ?? '').toLowerCase();
      requests.push(host);
      const policy = policies[host];
      if (req.url !== '/.well-known/mta-sts.txt' || policy === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    origin: `127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
