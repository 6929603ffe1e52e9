/**
 * The listeners the CA validates against (RFC 8555 §8.3, RFC 8737). HTTP-01: a plain-HTTP
 * listener that answers only `/.well-known/acme-challenge/<token>` and 404 for everything
 * else. TLS-ALPN-01: a dedicated TLS listener offering only the `acme-tls/1` protocol that
 * completes a handshake only for a name with a pending challenge, with that challenge's
 * certificate, and serves no data. It is its own port (acme.tlsAlpnPort), not the IMAPS or
 * HTTPS listener, so the mail listeners stay untouched (docs/deployment.md "ACME").
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext } from 'node:tls';
import type { Logger } from '../config/logger.js';

export interface ChallengeResponder {
  port: number;
  /** Publishes one challenge answer until `remove` is called with the same token/name. */
  add(challenge: {
    token: string;
    name: string;
    keyAuthorization: string;
    key?: string;
    cert?: string;
  }): void;
  remove(challenge: { token: string; name: string }): void;
  close(): Promise<void>;
}

const TOKEN = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/;

export async function startHttp01Responder(
  host: string,
  port: number,
  logger: Logger,
): Promise<ChallengeResponder> {
  const answers = new Map<string, string>();
  const server: HttpServer = createHttpServer((req, res) => {
    const match = TOKEN.exec((req.url ?? '').split('?')[0] ?? '');
    const answer = match === null ? undefined : answers.get(match[1]!);
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    logger.info({ ip: req.socket.remoteAddress }, 'ACME: answered an http-01 validation');
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(answer);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return {
    port: await listen(server, host, port),
    add: (c) => answers.set(c.token, c.keyAuthorization),
    remove: (c) => answers.delete(c.token),
    close: () => closeServer(server),
  };
}

export async function startTlsAlpn01Responder(
  host: string,
  port: number,
  logger: Logger,
): Promise<ChallengeResponder> {
  const contexts = new Map<string, SecureContext>();
  const server = createTlsServer({
    ALPNProtocols: ['acme-tls/1'],
    handshakeTimeout: 10_000,
    SNICallback: (name, callback) => {
      const context = contexts.get(name.toLowerCase());
      if (context === undefined) callback(new Error('no ACME challenge for this name'), undefined);
      else callback(null, context);
    },
  });
  // RFC 8737 §3: the handshake is the whole answer; close the connection after it.
  server.on('secureConnection', (socket) => {
    logger.info(
      { ip: socket.remoteAddress, alpn: socket.alpnProtocol },
      'ACME: answered a tls-alpn-01 validation',
    );
    socket.end();
  });
  server.on('tlsClientError', () => undefined);
  return {
    port: await listen(server, host, port),
    add: (c) => {
      if (c.key === undefined || c.cert === undefined)
        throw new Error('tls-alpn-01 needs the challenge certificate');
      contexts.set(c.name.toLowerCase(), createSecureContext({ key: c.key, cert: c.cert }));
    },
    remove: (c) => contexts.delete(c.name.toLowerCase()),
    close: () => closeServer(server),
  };
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as HttpServer).closeAllConnections?.();
  });
}
