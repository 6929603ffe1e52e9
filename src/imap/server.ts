/**
 * `startImapProxy`: the implicit-TLS and STARTTLS listeners, one ProxySession per
 * connection within the connection caps (connection-limits.ts), and the fan-out of
 * device revocations to open sessions.
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
import { requireProxyProtocol, type ProxyProtocolSettings } from '../net/proxy-listener.js';
import { DEFAULT_APPEND_LIMIT, groupAppendEncryptor } from './adapters/append-encryption.js';
import { AppendBudget } from './append-budget.js';
import { recryptTransform } from './adapters/recrypt-transform.js';
import {
  ConnectionLimits,
  type Admission,
  type ConnectionLimitOptions,
} from './connection-limits.js';
import type { ImapProxyMetrics } from './metrics.js';
import type { PointCache } from './point-cache.js';
import type { BodyTransform, DeviceDirectory } from './ports.js';
import { LOGIN_TIMEOUT_MS, ProxySession, type SessionEnvironment } from './session.js';
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
  /** Connection caps (docs/configuration.md, `imap.*`). */
  limits?: ConnectionLimitOptions;
  /** From connect to logged in, absolute (default 60 s). */
  loginTimeoutMs?: number;
  /** Encrypt plaintext APPENDs (Sent, Drafts) to the user's group (default true). */
  encryptAppends?: boolean;
  /** Largest APPEND held for encryption; larger ones are refused (default 50 MiB). */
  appendLimit?: number;
  /**
   * Recrypt plans kept across sessions and restarts (point-cache.ts): the EC multiply
   * happens once per message and device. A revoked device's entries are dropped here; key
   * changes are the caller's to report (adapters/point-cache-events.ts). Not closed here.
   */
  pointCache?: PointCache;
  /**
   * Both ports: only these balancers may connect, each connection starting with a PROXY
   * header whose client address the limits, throttle and logs see; off when absent.
   */
  proxyProtocol?: ProxyProtocolSettings;
  /** Replaces the recrypt core (benchmarks measuring the relay alone). */
  transformFor?: (keys: DeviceRecryptKeys) => BodyTransform;
}

export interface ImapProxy {
  ports: { tls?: number; starttls?: number };
  /** Replaces the certificate for new connections (SIGHUP reload); open sessions keep theirs. */
  setTls(tls: Pick<SecureContextOptions, 'key' | 'cert' | 'ca'>): void;
  /** Open sessions (for tests and metrics). */
  sessionCount(): number;
  /** Logged-in sessions (for tests and metrics). */
  loggedInCount(): number;
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
  const limits = new ConnectionLimits(options.limits);
  const appendLimit = options.appendLimit ?? DEFAULT_APPEND_LIMIT;
  const appendBudget = new AppendBudget({ perAccount: 2 * appendLimit, total: 4 * appendLimit });
  let loggedIn = 0;

  const env: SessionEnvironment = {
    upstream: options.upstream,
    master: options.master,
    directory: options.directory,
    throttle: new LoginThrottle(options.throttle),
    // With a point cache, first fetches take the points computed at delivery from it.
    transformFor:
      options.transformFor ??
      ((keys) =>
        recryptTransform(
          keys,
          options.pointCache?.delivered.source(),
          options.pointCache?.delivered.planSource(keys),
        )),
    ...(options.pointCache === undefined ? {} : { pointCache: options.pointCache }),
    ...(options.encryptAppends === false
      ? {}
      : {
          appendEncryptorFor: (certificate: Uint8Array, account: string) => ({
            ...groupAppendEncryptor(certificate, appendLimit),
            reserve: (bytes: number) => appendBudget.reserve(account, bytes),
            release: (bytes: number) => appendBudget.release(account, bytes),
          }),
        }),
    logger,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    secureContext,
    allowPlaintextOnLoopback: options.allowPlaintextOnLoopback ?? false,
    loginTimeoutMs: options.loginTimeoutMs ?? LOGIN_TIMEOUT_MS,
    register(session) {
      const device = session.device!;
      const releaseSlot = limits.session(device.address.toLowerCase(), session.remoteAddress);
      if (releaseSlot === null) return null;
      const key = deviceKey(device.address, device.deviceId);
      const set = byDevice.get(key) ?? new Set();
      set.add(session);
      byDevice.set(key, set);
      loggedIn++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        loggedIn--;
        releaseSlot();
        set.delete(session);
        if (set.size === 0 && byDevice.get(key) === set) byDevice.delete(key);
      };
    },
  };

  const unsubscribe = options.directory.onDeviceRevoked((event) => {
    const owner = event.address.toLowerCase();
    if (event.deviceId === null) options.pointCache?.forgetOwner(owner);
    else options.pointCache?.forgetDevice(owner, event.deviceId);
    const prefix = deviceKey(event.address, '');
    for (const [key, set] of byDevice) {
      const hit =
        event.deviceId === null
          ? key.startsWith(prefix)
          : key === deviceKey(event.address, event.deviceId);
      if (hit) for (const session of set) session.revoke();
    }
  });

  const refuse = (socket: Socket, admission: Admission): void => {
    options.metrics?.refused.inc({ reason: admission });
    logger.info({ ip: socket.remoteAddress, reason: admission }, 'connection over the limit');
    const text =
      admission === 'ip-full' ? 'Too many connections from your address' : 'Too many connections';
    socket.on('error', () => undefined);
    socket.end(`* BYE [UNAVAILABLE] ${text}\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
  };

  /** Counts a new TCP connection; its count is released when that socket closes. */
  const admit = (raw: Socket): Admission => {
    const { admission, release } = limits.admit(raw.remoteAddress ?? 'unknown');
    raw.once('close', release);
    return admission;
  };

  const accept = (socket: Socket, secure: boolean, admission: Admission): void => {
    if (admission !== 'ok') return refuse(socket, admission);
    socket.setNoDelay(true);
    const session = new ProxySession(socket, secure, env);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
    session.start();
  };

  // Sockets over a cap still need their TLS handshake to be told BYE: this ceiling bounds
  // how many of them (and of handshakes in progress) hold a descriptor at once.
  const ceiling = limits.maxConnections + 64;

  const servers: Server[] = [];
  let tlsServer: TlsServer | undefined;
  const ports: ImapProxy['ports'] = {};
  if (options.port !== undefined) {
    // The TLS socket reaches the listener only after its handshake; it is matched to the
    // TCP connection counted at accept by its remote address and port.
    const admissions = new Map<string, Admission>();
    const peer = (socket: Socket): string => `${socket.remoteAddress}|${socket.remotePort}`;
    const server = createTlsServer(
      { ...options.tls, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS },
      (socket) => accept(socket, true, admissions.get(peer(socket)) ?? 'server-full'),
    );
    server.maxConnections = ceiling;
    server.on('connection', (raw: Socket) => {
      const key = peer(raw);
      admissions.set(key, admit(raw));
      raw.once('close', () => admissions.delete(key));
    });
    server.on('tlsClientError', (error) =>
      logger.debug({ err: error.message }, 'TLS handshake failed'),
    );
    if (options.proxyProtocol !== undefined)
      requireProxyProtocol(server, options.proxyProtocol, { logger, listener: 'imaps' });
    ports.tls = await listen(server, options.host, options.port);
    tlsServer = server;
    servers.push(server);
  }
  if (options.starttlsPort !== undefined) {
    const server = createNetServer((socket) => accept(socket, false, admit(socket)));
    server.maxConnections = ceiling;
    if (options.proxyProtocol !== undefined)
      requireProxyProtocol(server, options.proxyProtocol, { logger, listener: 'imap' });
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
    loggedInCount: () => loggedIn,
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

/** A TLS handshake not done by then is abandoned (Node's default is 2 minutes). */
const TLS_HANDSHAKE_TIMEOUT_MS = 15_000;

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
