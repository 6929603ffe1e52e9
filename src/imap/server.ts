/**
 * `startImapProxy`: the implicit-TLS and STARTTLS listeners, one ProxySession per
 * connection, and the fan-out of device revocations to open sessions.
 */
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import {
  createSecureContext,
  createServer as createTlsServer,
  type Server as TlsServer,
  type SecureContextOptions,
} from 'node:tls';
import { pino, type Logger } from 'pino';
import { groupAppendEncryptor } from './adapters/append-encryption.js';
import { recryptTransform } from './adapters/recrypt-transform.js';
import type { ImapProxyMetrics } from './metrics.js';
import type { BodyTransform, DeviceDirectory } from './ports.js';
import { ProxySession, type SessionEnvironment } from './session.js';
import { LoginThrottle, type ThrottleOptions } from './throttle.js';
import type { MasterCredential, UpstreamOptions } from './upstream.js';
import type { DeviceRecryptKeys } from '../recrypt/types.js';

export interface ImapProxyOptions {
  host: string;
  /** Implicit TLS listener (993 in production); undefined: none. 0: any free port. */
  port?: number;
  /** STARTTLS listener (143 in production); undefined: none. */
  starttlsPort?: number;
  /** PEM key and certificate chain for both listeners. */
  tls: Pick<SecureContextOptions, 'key' | 'cert' | 'ca'>;
  upstream: UpstreamOptions;
  master: MasterCredential;
  directory: DeviceDirectory;
  logger?: Logger;
  metrics?: ImapProxyMetrics;
  /** Allow LOGIN/AUTHENTICATE without TLS from 127.0.0.1/::1 (tests, local clients). */
  allowPlaintextOnLoopback?: boolean;
  throttle?: ThrottleOptions;
  /** Encrypt plaintext APPENDs (Sent, Drafts) to the user's group (default true). */
  encryptAppends?: boolean;
  /** Largest APPEND held for encryption; larger ones are refused (default 50 MiB). */
  appendLimit?: number;
  /** Replaces the recrypt core (benchmarks measuring the relay alone). */
  transformFor?: (keys: DeviceRecryptKeys) => BodyTransform;
}

export interface ImapProxy {
  ports: { tls?: number; starttls?: number };
  /** Replaces the certificate for new connections (SIGHUP reload); open sessions keep theirs. */
  setTls(tls: Pick<SecureContextOptions, 'key' | 'cert' | 'ca'>): void;
  /** Open sessions (for tests and metrics). */
  sessionCount(): number;
  /** Stops listening and closes every session with BYE. */
  close(): Promise<void>;
}

export async function startImapProxy(options: ImapProxyOptions): Promise<ImapProxy> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const secureContext = createSecureContext(options.tls);
  const sessions = new Set<ProxySession>();
  const byDevice = new Map<string, Set<ProxySession>>();
  const deviceKey = (address: string, deviceId: string): string =>
    `${address.toLowerCase()}\u0000${deviceId}`;

  const env: SessionEnvironment = {
    upstream: options.upstream,
    master: options.master,
    directory: options.directory,
    throttle: new LoginThrottle(options.throttle),
    transformFor: options.transformFor ?? recryptTransform,
    ...(options.encryptAppends === false
      ? {}
      : {
          appendEncryptorFor: (certificate: Uint8Array) =>
            groupAppendEncryptor(certificate, options.appendLimit),
        }),
    logger,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    secureContext,
    allowPlaintextOnLoopback: options.allowPlaintextOnLoopback ?? false,
    register(session) {
      const device = session.device!;
      const key = deviceKey(device.address, device.deviceId);
      const set = byDevice.get(key) ?? new Set();
      set.add(session);
      byDevice.set(key, set);
      return () => {
        set.delete(session);
        if (set.size === 0 && byDevice.get(key) === set) byDevice.delete(key);
      };
    },
  };

  const unsubscribe = options.directory.onDeviceRevoked((event) => {
    const prefix = deviceKey(event.address, '');
    for (const [key, set] of byDevice) {
      const hit =
        event.deviceId === null
          ? key.startsWith(prefix)
          : key === deviceKey(event.address, event.deviceId);
      if (hit) for (const session of set) session.revoke();
    }
  });

  const accept = (socket: Socket, secure: boolean): void => {
    socket.setNoDelay(true);
    const session = new ProxySession(socket, secure, env);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
    session.start();
  };

  const servers: Server[] = [];
  let tlsServer: TlsServer | undefined;
  const ports: ImapProxy['ports'] = {};
  if (options.port !== undefined) {
    const server = createTlsServer({ ...options.tls }, (socket) => accept(socket, true));
    server.on('tlsClientError', (error) =>
      logger.debug({ err: error.message }, 'TLS handshake failed'),
    );
    ports.tls = await listen(server, options.host, options.port);
    tlsServer = server;
    servers.push(server);
  }
  if (options.starttlsPort !== undefined) {
    const server = createNetServer((socket) => accept(socket, false));
    ports.starttls = await listen(server, options.host, options.starttlsPort);
    servers.push(server);
  }
  logger.info({ ports }, 'IMAP proxy listening');

  return {
    ports,
    setTls(tls) {
      env.secureContext = createSecureContext(tls);
      tlsServer?.setSecureContext({ ...tls });
    },
    sessionCount: () => sessions.size,
    async close() {
      unsubscribe();
      const closed = servers.map(
        (server) => new Promise<void>((resolve) => server.close(() => resolve())),
      );
      for (const session of sessions) session.shutdown();
      await Promise.all(closed);
    },
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
