/**
 * One client connection: greeting, the pre-auth commands the proxy answers itself
 * (CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE PLAIN), then the login
 * (session-login.ts: device login and the master login upstream; its errors become
 * `NO [code]` there and nowhere else), then the two-way relay (session-relay.ts), and the
 * session's end: BYE now, or at the next response boundary on revocation and shutdown.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { loginIdentity, saslPlainLogin, type LoginIdentity } from './login-identity.js';
import type { ImapProxyMetrics } from './metrics.js';
import type { PointCache } from './point-cache.js';
import type {
  AppendEncryptor,
  AuthenticatedDevice,
  BodyTransform,
  DeviceDirectory,
} from './ports.js';
import { PREAUTH_LINE_TOO_LONG, PreauthReader, type PreauthCommand } from './preauth.js';
import { SessionLogin } from './session-login.js';
import { SessionRelay } from './session-relay.js';
import type { LoginThrottle } from './throttle.js';
import type { MasterCredential, UpstreamConnection, UpstreamOptions } from './upstream.js';
import type { DeviceRecryptKeys } from '../recrypt/types.js';

/** Default of `loginTimeoutMs`: from connect to logged in, however the client trickles. */
export const LOGIN_TIMEOUT_MS = 60_000;
const MAX_BAD_COMMANDS = 10;
/** A revoked device's sessions end within 2 s. */
const REVOKE_GRACE_MS = 1_500;
/** How long a stopping gateway lets a response in flight finish. */
const SHUTDOWN_GRACE_MS = 30_000;

export interface SessionEnvironment {
  upstream: UpstreamOptions;
  master: MasterCredential;
  directory: DeviceDirectory;
  throttle: LoginThrottle;
  transformFor: (keys: DeviceRecryptKeys) => BodyTransform;
  /** Plans kept across sessions and restarts (point-cache.ts); undefined: per session only. */
  pointCache?: PointCache;
  logger: Logger;
  metrics?: ImapProxyMetrics;
  /** For STARTTLS on a plain listener. */
  secureContext?: SecureContext;
  /** Plain connections from loopback may log in without TLS. */
  allowPlaintextOnLoopback: boolean;
  /**
   * The encryptor for APPENDs into `account`'s mailbox, to the user's group (with that
   * account's memory budget); undefined stores APPENDs as sent.
   */
  appendEncryptorFor?: (groupCertificate: Uint8Array, account: string) => AppendEncryptor;
  /** Time from connect to a completed login; the session ends with BYE after it. */
  loginTimeoutMs: number;
  /**
   * Called once the device is known, before it is re-checked (revocations from then on
   * reach the session); returns the unregister function, or null when the account
   * already has the most sessions allowed from this client address.
   */
  register(session: ProxySession): (() => void) | null;
}

export class ProxySession {
  readonly id = randomUUID();
  private socket: Socket;
  private secure: boolean;
  private reader = new PreauthReader();
  private state: 'preauth' | 'busy' | 'relay' | 'closing' | 'closed' = 'preauth';
  private badCommands = 0;
  private loginTimer: NodeJS.Timeout | undefined;
  private upstream: UpstreamConnection | null = null;
  private relay: SessionRelay | null = null;
  private unregister: () => void = () => undefined;
  private readonly ended = new AbortController();
  private readonly log: Logger;
  private readonly logins: SessionLogin;
  readonly remoteAddress: string;
  device: AuthenticatedDevice | null = null;

  constructor(
    socket: Socket,
    secure: boolean,
    private readonly env: SessionEnvironment,
  ) {
    this.socket = socket;
    this.secure = secure;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
    this.log = env.logger.child({ session: this.id, ip: this.remoteAddress });
    this.logins = new SessionLogin({
      env,
      remoteAddress: this.remoteAddress,
      log: this.log,
      ended: () => this.state === 'closed',
      wait: (ms) => this.wait(ms),
      write: (text) => this.write(text),
      bye: (text) => this.bye(text),
      register: (device) => this.register(device),
      forget: () => {
        this.unregister();
        this.unregister = () => undefined;
        this.device = null;
      },
      loggedIn: (device, upstream) => this.startRelay(device, upstream),
    });
  }

  start(): void {
    this.env.metrics?.sessions.inc();
    this.attach(this.socket);
    this.socket.once('close', () => this.cleanup());
    this.write(`* OK [CAPABILITY ${this.preauthCapabilities()}] recrypt gateway ready\r\n`);
    // Absolute, not reset by traffic: a client trickling a byte now and then must not hold
    // a pre-login connection for ever (docs/threat-model.md, Limits).
    this.loginTimer = setTimeout(() => this.bye('Login timeout'), this.env.loginTimeoutMs);
    this.loginTimer.unref();
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onPreauthData);
    socket.on('error', (error) => this.log.debug({ err: error.message }, 'client socket error'));
  }

  private readonly onPreauthData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    if (this.state === 'preauth') void this.drain();
  };

  private plaintextAllowed(): boolean {
    if (this.secure) return true;
    if (!this.env.allowPlaintextOnLoopback) return false;
    return ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(this.remoteAddress);
  }

  private preauthCapabilities(): string {
    const caps = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE'];
    if (!this.secure && this.env.secureContext !== undefined) caps.push('STARTTLS');
    caps.push(this.plaintextAllowed() ? 'AUTH=PLAIN' : 'LOGINDISABLED');
    return caps.join(' ');
  }

  private write(text: string): void {
    if (this.state !== 'closed' && this.socket.writable) this.socket.write(text);
  }

  /** Handles every complete pre-auth command held, one at a time (login is async). */
  private async drain(): Promise<void> {
    while (this.state === 'preauth') {
      const event = this.reader.next();
      if (event === null) return;
      if (event.type === 'continue') this.write('+ Ready for literal data\r\n');
      else if (event.type === 'too-long') return this.bye('Command too long');
      else if (event.type === 'bad') this.badCommand(event.tag, event.text);
      else await this.command(event.command);
    }
  }

  private badCommand(tag: string, text: string): void {
    this.write(`${tag} BAD ${text}\r\n`);
    if (++this.badCommands >= MAX_BAD_COMMANDS) this.bye('Too many invalid commands');
  }

  private async command({ tag, name, args }: PreauthCommand): Promise<void> {
    switch (name) {
      case 'CAPABILITY':
        this.write(
          `* CAPABILITY ${this.preauthCapabilities()}\r\n${tag} OK Capability completed\r\n`,
        );
        return;
      case 'NOOP':
        this.write(`${tag} OK NOOP completed\r\n`);
        return;
      case 'ID':
        this.write(`* ID ("name" "recrypt-gateway")\r\n${tag} OK ID completed\r\n`);
        return;
      case 'LOGOUT':
        this.write(`* BYE Logging out\r\n${tag} OK Logout completed\r\n`);
        return this.close();
      case 'STARTTLS':
        return this.startTls(tag);
      case 'LOGIN':
        if (args.length !== 2)
          return this.badCommand(tag, 'LOGIN needs a user name and a password');
        return this.login(tag, loginIdentity(args[0]!.toString('utf8')), args[1]!.toString());
      case 'AUTHENTICATE':
        return this.authenticate(tag, args);
      default:
        this.badCommand(tag, 'Command unknown or not allowed before login');
    }
  }

  private startTls(tag: string): void {
    if (this.secure || this.env.secureContext === undefined) {
      this.badCommand(tag, 'TLS is already active or not available');
      return;
    }
    this.write(`${tag} OK Begin TLS negotiation now\r\n`);
    // Anything pipelined after STARTTLS was sent in the clear: discard it (RFC 8314 §4.1… the
    // command-injection attack).
    this.reader.takeRest();
    this.socket.off('data', this.onPreauthData);
    this.state = 'busy';
    const tlsSocket = new TLSSocket(this.socket, {
      isServer: true,
      secureContext: this.env.secureContext,
    });
    tlsSocket.once('secure', () => {
      this.socket = tlsSocket;
      this.secure = true;
      this.reader = new PreauthReader();
      this.state = 'preauth';
      this.attach(tlsSocket);
    });
    tlsSocket.on('error', (error) => {
      this.log.debug({ err: error.message }, 'STARTTLS handshake failed');
      this.close();
    });
  }

  private async authenticate(tag: string, args: Buffer[]): Promise<void> {
    const mechanism = args[0]?.toString('latin1').toUpperCase();
    if (mechanism !== 'PLAIN') {
      this.write(`${tag} NO Unsupported authentication mechanism\r\n`);
      return;
    }
    let response = args[1]?.toString('latin1');
    if (response === undefined) {
      this.write('+ \r\n');
      response = (await this.readLine()) ?? undefined;
      if (response === undefined) return;
    }
    if (response === '*') {
      this.write(`${tag} BAD Authentication cancelled\r\n`);
      return;
    }
    const plain = saslPlainLogin(response);
    if (plain === null) return this.badCommand(tag, 'Invalid SASL PLAIN response');
    return this.login(tag, plain.identity, plain.password);
  }

  private readLine(): Promise<string | null> {
    this.state = 'busy';
    return new Promise((resolve) => {
      const check = (): void => {
        const line = this.reader.nextLine();
        if (line !== null) {
          this.socket.off('data', check);
          this.socket.off('close', closed);
          this.state = 'preauth';
          if (line === PREAUTH_LINE_TOO_LONG) {
            this.bye('Command too long');
            resolve(null);
          } else resolve(line);
        }
      };
      const closed = (): void => resolve(null);
      this.socket.on('data', check);
      this.socket.once('close', closed);
      check();
    });
  }

  private async login(tag: string, who: LoginIdentity, password: string): Promise<void> {
    if (!this.plaintextAllowed()) {
      this.write(`${tag} NO [PRIVACYREQUIRED] Use TLS (STARTTLS or port 993) to log in\r\n`);
      return;
    }
    this.state = 'busy';
    this.socket.pause();
    try {
      await this.logins.run(tag, who, password);
    } finally {
      // The caller (drain) goes on with whatever the client pipelined.
      if (this.state === 'busy') {
        this.state = 'preauth';
        this.socket.resume();
      }
    }
  }

  /** Resolves after `ms`, or as soon as the session ends. */
  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.ended.signal.addEventListener('abort', done, { once: true });
    });
  }

  /** The device is known: registered for revocations, unless over the account's cap. */
  private register(device: AuthenticatedDevice): boolean {
    this.device = device;
    const unregister = this.env.register(this);
    if (unregister === null) {
      this.device = null;
      return false;
    }
    this.unregister = unregister;
    return true;
  }

  private startRelay(device: AuthenticatedDevice, upstream: UpstreamConnection): void {
    this.upstream = upstream;
    this.state = 'relay';
    clearTimeout(this.loginTimer);
    const relay = new SessionRelay(
      {
        env: this.env,
        log: this.log,
        ending: () => this.state === 'closed' || this.state === 'closing',
        bye: (text) => this.bye(text),
      },
      device,
      upstream,
      this.socket,
    );
    this.relay = relay;
    this.socket.off('data', this.onPreauthData);
    relay.start(this.socket, this.reader.takeRest());
  }

  /** The device was revoked while connected: BYE within REVOKE_GRACE_MS. */
  revoke(): void {
    this.log.info('device revoked: closing session');
    this.env.metrics?.logins.inc({ result: 'revoked' });
    this.byeAtBoundary('Device access revoked', REVOKE_GRACE_MS);
  }

  /** The gateway is stopping: the response being relayed completes first. */
  shutdown(): void {
    this.byeAtBoundary('Server shutting down', SHUTDOWN_GRACE_MS);
  }

  /**
   * `* BYE text` at the next response boundary, so a FETCH literal in flight is never cut
   * short: no further client command goes upstream, the response being relayed
   * completes, then BYE and close. A response still unfinished after `graceMs` (a huge
   * literal to a stalled client) ends with the connection cut.
   */
  private byeAtBoundary(text: string, graceMs: number): void {
    const pump = this.relay?.pump;
    if (this.state !== 'relay' || pump === undefined || pump.ended) {
      this.bye(text);
      return;
    }
    this.state = 'closing';
    this.socket.unpipe();
    const force = setTimeout(() => {
      this.log.warn('response still in flight at close: connection cut');
      this.socket.destroy();
      this.cleanup();
    }, graceMs);
    force.unref();
    pump.once('end', () => {
      clearTimeout(force);
      this.close();
    });
    pump.closeAtBoundary(Buffer.from(`* BYE ${text}\r\n`, 'latin1'));
  }

  /** Ends the session now with `* BYE text` (text null: upstream already said BYE). */
  bye(text: string | null): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.relay?.pump.detach();
    if (text !== null && this.socket.writable) this.socket.write(`* BYE ${text}\r\n`);
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.loginTimer);
    this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 1000).unref();
    this.cleanup();
  }

  private cleanupDone = false;
  private cleanup(): void {
    if (this.cleanupDone) return;
    this.cleanupDone = true;
    this.state = 'closed';
    this.ended.abort();
    clearTimeout(this.loginTimer);
    this.env.metrics?.sessions.dec();
    this.upstream?.close();
    this.relay?.fetcher.close();
    // Gives back the memory budget of an APPEND cut off mid-literal.
    this.relay?.client.destroy();
    this.unregister();
  }
}
