/**
 * One client connection: greeting, the pre-auth commands the proxy answers itself,
 * device login, the master login upstream, then the two-way relay (ClientRelay one way,
 * the response rewriter the other). Errors with an IMAP status become `NO [code]` here
 * and nowhere else; the client gets generic text, the log the detail, neither a secret.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { ArchiveReadOnly } from './archive.js';
import { filterCapabilities, filterCapabilityLine } from './capabilities.js';
import { ClientRelay } from './client-relay.js';
import { ImapProxyError } from './errors.js';
import {
  authenticateIdentity,
  loginIdentity,
  saslPlainLogin,
  type LoginIdentity,
} from './login-identity.js';
import type { ImapProxyMetrics } from './metrics.js';
import { PlanCache, type PlanLookup } from './plan-cache.js';
import { liveFingerprint } from './plan-codec.js';
import { TieredPlans, type PointCache } from './point-cache.js';
import type {
  AppendEncryptor,
  AuthenticatedDevice,
  BodyTransform,
  DeviceDirectory,
} from './ports.js';
import { PrefixFetcher } from './prefix-fetcher.js';
import { PREAUTH_LINE_TOO_LONG, PreauthReader, type PreauthCommand } from './preauth.js';
import type { BodyEvent } from './body-literal.js';
import { RewriterStream } from './rewriter-stream.js';
import { SelectionTracker } from './selection.js';
import type { LoginThrottle } from './throttle.js';
import { UpstreamConnection, type MasterCredential, type UpstreamOptions } from './upstream.js';
import type { DeviceRecryptKeys } from '../recrypt/types.js';

/** Default of `loginTimeoutMs`: from connect to logged in, however the client trickles. */
export const LOGIN_TIMEOUT_MS = 60_000;
const MAX_LOGIN_FAILURES = 3;
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
  /** Encrypts what clients APPEND to the user's group; undefined stores APPENDs as sent. */
  /** The encryptor for APPENDs into `account`'s mailbox (with that account's memory budget). */
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
  private failures = 0;
  private badCommands = 0;
  private loginTimer: NodeJS.Timeout | undefined;
  private upstream: UpstreamConnection | null = null;
  private fetcher: PrefixFetcher | null = null;
  private rewriter: RewriterStream | null = null;
  private unregister: () => void = () => undefined;
  private upstreamSaidBye = false;
  private readonly log: Logger;
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
    const directory = this.env.directory;
    const account = directory.accountOf?.(who.member) ?? who.member.trim().toLowerCase();
    let release: (() => void) | null = await this.env.throttle.acquire(this.remoteAddress);
    try {
      if ((this.state as string) === 'closed') return;
      const delay = await this.env.throttle.delayFor(this.remoteAddress, account);
      if (delay > 0) this.log.info({ delayMs: delay }, 'login delayed after failed attempts');
      // A session that ends while it waits gives its slot back at once.
      if (delay > 0) await this.wait(delay);
      if ((this.state as string) === 'closed') return;
      const device = await authenticateIdentity(directory, who, password);
      if (device === null) return await this.loginFailed(tag, account);
      this.device = device;
      const unregister = this.env.register(this);
      if (unregister === null) {
        this.device = null;
        this.env.metrics?.logins.inc({ result: 'limit' });
        this.log.info({ address: device.address }, 'too many sessions for this account and IP');
        this.write(`${tag} NO [LIMIT] Too many connections for this account from your address\r\n`);
        return this.bye('Too many connections');
      }
      this.unregister = unregister;
      // Registered first, then re-checked: a revocation that completed while the credential
      // was checked shows here, one that completes later reaches this session.
      if (!((await directory.stillActive?.(device)) ?? true)) {
        this.unregister();
        this.unregister = () => undefined;
        this.device = null;
        return await this.loginFailed(tag, account);
      }
      release();
      release = null;
      if ((this.state as string) === 'closed') return;
      await this.env.throttle.recordSuccessShared(account);
      const storeUser = device.archive?.mailbox ?? device.address;
      const upstream = await UpstreamConnection.open(this.env.upstream, this.env.master, storeUser);
      if ((this.state as string) === 'closed') {
        upstream.close();
        return;
      }
      this.upstream = upstream;
      this.env.metrics?.logins.inc({ result: 'ok' });
      const archive = device.archive?.list;
      this.log.info({ address: device.address, device: device.deviceId, archive }, 'logged in');
      const capabilities = filterCapabilities(upstream.capabilities, true).join(' ');
      this.write(`${tag} OK [CAPABILITY ${capabilities}] Logged in\r\n`);
      this.startRelay(device, upstream);
    } catch (error) {
      this.unregister();
      this.device = null;
      if (error instanceof ImapProxyError) {
        this.env.metrics?.logins.inc({ result: 'unavailable' });
        this.log.warn({ err: error.message }, 'login could not complete');
        this.write(`${tag} NO [${error.code}] ${error.clientText}\r\n`);
      } else {
        this.log.error({ err: (error as Error).message }, 'login failed unexpectedly');
        this.write(`${tag} NO [UNAVAILABLE] Service temporarily unavailable\r\n`);
      }
    } finally {
      release?.();
      // The caller (drain) goes on with whatever the client pipelined.
      if (this.state === 'busy') {
        this.state = 'preauth';
        this.socket.resume();
      }
    }
  }

  private readonly ended = new AbortController();

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

  private async loginFailed(tag: string, address: string): Promise<void> {
    // Counted (in every process, when shared) before the client hears the answer.
    await this.env.throttle.recordFailureShared(this.remoteAddress, address);
    this.env.metrics?.logins.inc({ result: 'failed' });
    this.log.info('device login failed');
    this.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed\r\n`);
    if (++this.failures >= MAX_LOGIN_FAILURES) this.bye('Too many failed logins');
  }

  private startRelay(device: AuthenticatedDevice, upstream: UpstreamConnection): void {
    this.state = 'relay';
    clearTimeout(this.loginTimer);
    const selection = new SelectionTracker();
    // A list archive is shared by every member: read-only, so nothing is APPENDed to it.
    const archive = device.archive === undefined ? null : new ArchiveReadOnly();
    const literalPlus = upstream.capabilities.some((c) => c.toUpperCase() === 'LITERAL+');
    const encryptor =
      this.env.appendEncryptorFor !== undefined &&
      device.groupCertificate !== undefined &&
      literalPlus
        ? this.env.appendEncryptorFor(device.groupCertificate, device.address)
        : undefined;
    if (this.env.appendEncryptorFor !== undefined && encryptor === undefined && archive === null) {
      this.log.warn('APPEND encryption unavailable (no group certificate or no LITERAL+ upstream)');
    }
    let rewriterRef: RewriterStream | null = null;
    const relay = new ClientRelay(selection, {
      onRefused: (name) => this.log.info({ command: name }, 'refused command'),
      ...(encryptor === undefined ? {} : { encryptor }),
      ...(archive === null ? {} : { readOnly: archive }),
      inject: (bytes) => rewriterRef?.rewriter.inject(bytes),
      onFatal: (text) => this.bye(text),
    });
    const storeUser = device.archive?.mailbox ?? device.address;
    const fetcher = new PrefixFetcher(this.env.upstream, this.env.master, storeUser);
    this.fetcher = fetcher;
    const rewriter = new RewriterStream({
      transform: this.env.transformFor(device.keys),
      cache: this.plansFor(device, storeUser),
      selection: () => selection.current(),
      fetchPrefix: (request) => fetcher.fetch(request),
      onTextLine: (line) => {
        selection.responseLine(line);
        relay.upstreamLine(line);
        if (/^\* BYE\b/i.test(line)) this.upstreamSaidBye = true;
      },
      rewriteTextLine: (line) =>
        relay.takeHiddenLine()
          ? null
          : archive === null
            ? filterCapabilityLine(line)
            : archive.responseLine(filterCapabilityLine(line)),
      onBody: (event) => this.onBody(event),
    });
    this.rewriter = rewriter;
    rewriterRef = rewriter;
    const metrics = this.env.metrics;
    const upstreamSocket = upstream.socket;
    const leftover = upstream.detach();
    this.socket.off('data', this.onPreauthData);
    upstreamSocket.on('error', (error) =>
      this.log.warn({ err: error.message }, 'upstream socket error'),
    );
    rewriter.on('error', (error) => {
      this.log.error({ err: error.message }, 'response rewriter failed');
      this.bye('Internal error');
    });
    if (metrics !== undefined) {
      rewriter.on('data', (chunk: Buffer) =>
        metrics.bytes.inc({ direction: 'to_client' }, chunk.length),
      );
      relay.on('data', (chunk: Buffer) =>
        metrics.bytes.inc({ direction: 'to_upstream' }, chunk.length),
      );
    }
    if (leftover.length > 0) rewriter.write(leftover);
    upstreamSocket.pipe(rewriter).pipe(this.socket, { end: false });
    rewriter.once('end', () => {
      if (this.state === 'closed' || this.state === 'closing') return;
      if (!this.upstreamSaidBye) this.log.warn('upstream closed the session');
      this.bye(this.upstreamSaidBye ? null : 'Mail store connection closed');
    });
    this.relay = relay;
    relay.pipe(upstreamSocket, { end: false });
    const rest = this.reader.takeRest();
    if (rest.length > 0) relay.write(rest);
    this.socket.pipe(relay, { end: false });
    this.socket.resume();
  }

  /** The session's plan cache, over the point cache for this device when there is one. */
  private plansFor(device: AuthenticatedDevice, storeUser: string): PlanLookup {
    const own = new PlanCache();
    if (this.env.pointCache === undefined) return own;
    return new TieredPlans(own, this.env.pointCache, {
      owner: device.address.toLowerCase(),
      device: device.deviceId,
      storeUser,
      fingerprint: liveFingerprint(device.keys),
    });
  }

  private onBody(event: BodyEvent): void {
    this.env.metrics?.bodies.inc({ result: event.result, reason: event.reason ?? '' });
    if (event.reason === 'invalid-point') {
      this.log.warn(
        { section: event.item.section },
        'originator point not on P-256: body passed unchanged',
      );
    } else if (event.result === 'unresolved') {
      this.log.warn(
        { section: event.item.section, origin: event.item.origin },
        'partial body could not be planned: passed unchanged',
      );
    } else {
      this.log.debug({ result: event.result, reason: event.reason }, 'body');
    }
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
    const rewriter = this.rewriter;
    if (this.state !== 'relay' || rewriter === null || rewriter.readableEnded) {
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
    rewriter.once('end', () => {
      clearTimeout(force);
      this.close();
    });
    rewriter.closeAtBoundary(Buffer.from(`* BYE ${text}\r\n`, 'latin1'));
  }

  /** Ends the session now with `* BYE text` (text null: upstream already said BYE). */
  bye(text: string | null): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (this.upstream !== null) {
      this.upstream.socket.unpipe();
      this.rewriter?.unpipe(this.socket);
    }
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

  private relay: ClientRelay | null = null;
  private cleanupDone = false;
  private cleanup(): void {
    if (this.cleanupDone) return;
    this.cleanupDone = true;
    this.state = 'closed';
    this.ended.abort();
    clearTimeout(this.loginTimer);
    this.env.metrics?.sessions.dec();
    this.upstream?.close();
    this.fetcher?.close();
    // Gives back the memory budget of an APPEND cut off mid-literal.
    this.relay?.destroy();
    this.unregister();
  }
}
