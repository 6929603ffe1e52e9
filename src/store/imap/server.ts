import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import type { MailStore } from '../backend.js';
import { runConnection, type ConnectionLimits } from './connection.js';
import { CommandInput, type InputLimits } from './input.js';
import { Output } from './output.js';
import { RenderCache } from './render/cache.js';
import { Session, type Logger } from './session.js';
import type { StoreImapMetrics } from './metrics.js';

export type ImapLimits = InputLimits &
  ConnectionLimits & {
    /** Simultaneous connections; more are greeted with BYE. */
    maxConnections: number;
    /** Memory for rendered ENVELOPE/BODYSTRUCTURE and small headers, shared by all sessions, bytes (0 disables). */
    renderCacheBytes: number;
  };

export const DEFAULT_LIMITS: ImapLimits = {
  maxLineLength: 64 * 1024,
  maxLiteralSize: 64 * 1024 * 1024,
  maxCommandSize: 65 * 1024 * 1024,
  maxBadCommands: 10,
  commandsPerSecond: 1000,
  maxConnections: 1000,
  renderCacheBytes: 32 * 1024 * 1024,
};

export interface ImapServerOptions {
  store: MailStore;
  /** Default 127.0.0.1: only the gateway on this machine should reach the store. */
  host?: string;
  /** Default 0 (any free port; read it from the handle). */
  port?: number;
  /** Offers STARTTLS; with `implicit` the listener speaks TLS from the first byte (IMAPS). */
  tls?: { key: string | Buffer; cert: string | Buffer; implicit?: boolean };
  /** The gateway's master credential: AUTHENTICATE PLAIN with authzid = user logs in as that user. */
  master: { user: string; password: string };
  /** Accept a user's own LOGIN / PLAIN without authzid, with the master password (for clients that cannot send an authzid). Default false. */
  allowUserLogin?: boolean;
  /** Inactivity before autologout; RFC 3501 §5.4 asks for at least 30 minutes (the default). */
  idleTimeoutMs?: number;
  limits?: Partial<ImapLimits>;
  logger?: Logger;
  /** Connections gauge and commands counter (see metrics.ts); the server runs without them. */
  metrics?: StoreImapMetrics;
}

export interface ImapServerHandle {
  readonly host: string;
  readonly port: number;
  /** Open connections right now. */
  connections(): number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

const SILENT: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Starts the embedded store's IMAP server. */
export async function startImapServer(options: ImapServerOptions): Promise<ImapServerHandle> {
  const limits: ImapLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const logger = options.logger ?? SILENT;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30 * 60 * 1000;
  const context: SecureContext | null = options.tls
    ? createSecureContext({ key: options.tls.key, cert: options.tls.cert })
    : null;
  const implicit = options.tls?.implicit === true;
  const sockets = new Set<Socket>();
  const cache = new RenderCache(limits.renderCacheBytes);
  let nextId = 1;

  const metrics = options.metrics;
  const handle = (raw: Socket): void => {
    sockets.add(raw);
    metrics?.connections.inc();
    raw.on('close', () => {
      sockets.delete(raw);
      metrics?.connections.dec();
    });
    raw.on('error', () => undefined);
    raw.setNoDelay(true);
    if (sockets.size > limits.maxConnections) {
      raw.end('* BYE Too many connections\r\n');
      return;
    }
    raw.setTimeout(idleTimeoutMs, () => {
      if (!raw.destroyed) raw.end('* BYE Autologout; idle for too long\r\n');
      setTimeout(() => raw.destroy(), 1000).unref();
    });
    let socket: Socket | TLSSocket = raw;
    if (implicit && context !== null) {
      socket = new TLSSocket(raw, { isServer: true, secureContext: context });
      socket.on('error', () => undefined);
    }
    const out = new Output(socket);
    // eslint-disable-next-line prefer-const
    let session: Session;
    const input = new CommandInput(socket, limits, async () => {
      out.line('+ Ready for literal data');
      await out.flush();
    });
    const startTls = async (): Promise<void> => {
      if (context === null) return;
      input.detach();
      const secure = new TLSSocket(raw, { isServer: true, secureContext: context });
      secure.on('error', () => undefined);
      await Promise.race([
        once(secure, 'secure'),
        once(secure, 'close').then(() => Promise.reject(new Error('TLS handshake failed'))),
      ]);
      input.replaceSocket(secure);
      out.replaceSocket(secure);
      session.secure = true;
    };
    session = new Session(
      {
        store: options.store,
        master: options.master,
        allowUserLogin: options.allowUserLogin ?? false,
        tlsAvailable: context !== null,
        logger,
        cache,
        metrics,
      },
      out,
      input,
      implicit,
      startTls,
      nextId++,
    );
    runConnection(session, limits)
      .catch((err: unknown) => logger.error({ err, session: session.id }, 'imap connection failed'))
      .finally(() => {
        if (!raw.destroyed) raw.end();
        setTimeout(() => raw.destroy(), 1000).unref();
      });
  };

  const server: Server = createServer(handle);
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error('IMAP server has no TCP address');
  return {
    host: address.address,
    port: address.port,
    connections: () => sockets.size,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
