/**
 * Submission (RFC 6409): two smtp-server listeners, STARTTLS (587) and implicit TLS (465),
 * for the users' own mail clients. AUTH PLAIN/LOGIN with a device's IMAP credential,
 * checked exactly as the IMAP proxy checks it (the proxy's DeviceDirectory, the same login
 * throttle), offered only over TLS (before STARTTLS: 538; MAIL before AUTH: 530). The
 * envelope sender and every From address must be the user's own or a list the user may
 * speak for (sender-identity.ts; else 550 5.7.1). A device
 * revoked while connected is disconnected. Recipients are routed at RCPT (routing.ts),
 * the message is sent after DATA (send.ts); 250 means every local copy is stored and
 * every remote copy durably queued. Reply table: docs/sending.md.
 */
import pino, { type Logger } from 'pino';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimitSettings,
} from '../admin/rate-limit.js';
import type { DeviceDirectory } from '../imap/ports.js';
import { LoginThrottle, type SharedLoginFailures } from '../imap/throttle.js';
import { collectMessage } from '../smtp/collect.js';
import { EnhancedCodeSmtpServer } from '../smtp/enhanced-server.js';
import { DEFAULT_HEADER_LIMITS } from '../smtp/header-limits.js';
import { headerReply, settle } from '../smtp/hook-support.js';
import type { DeliveryTarget, RecipientDirectory } from '../smtp/ports.js';
import { SmtpReply, replies } from '../smtp/reply.js';
import type { OutboundQueue } from '../outbound/index.js';
import type { KeyDiscovery } from './key-sources.js';
import {
  isClientEncrypted,
  readHeader,
  withSubmissionFixups,
  writtenFromAddresses,
} from './message.js';
import { routeRecipient, type Route } from './routing.js';
import { sendSubmitted } from './send.js';
import { checkFromAddresses, senderIdentity, type SenderLists } from './sender-identity.js';
import { senderRequiresEncryption, type PublishedProfiles } from './sender-policy.js';
import type { SentCopies } from './sent-copy.js';

export interface SubmissionServerOptions {
  host: string;
  /** STARTTLS listener; 0 picks a free port. */
  port: number;
  /** Implicit TLS listener; 0 picks a free port. */
  tlsPort: number;
  tls: { key: string | Buffer; cert: string | Buffer };
  hostname: string;
  maxSize: number;
  maxRecipients: number;
  rateLimit: RateLimitSettings;
  /** The buckets for `rateLimit` when they are shared; else this process's. */
  rateLimiter?: RateLimiter;
  /** Login failures counted with every process's (throttle.ts). */
  loginFailures?: SharedLoginFailures;
  withoutKey: 'send' | 'refuse';
  hideSubject: boolean;
  /** Device login, as the IMAP proxy does it. */
  devices: DeviceDirectory;
  /** The MX's recipient directory (users and lists of this gateway). */
  directory: RecipientDirectory;
  /** The lists a user may send as (the key store); without it only their own address. */
  lists?: SenderLists;
  /** Published profiles (the key store), for the sender's own policy; without it none applies. */
  profiles?: PublishedProfiles;
  discovery: KeyDiscovery;
  delivery: DeliveryTarget;
  queue: OutboundQueue;
  sentCopies: SentCopies | null;
  logger?: Logger;
  commandTimeoutMs?: number;
  dataTimeoutMs?: number;
  closeTimeoutMs?: number;
  maxClients?: number;
}

export interface SubmissionServer {
  port: number;
  tlsPort: number;
  setTls(tls: { key: string | Buffer; cert: string | Buffer }): void;
  close(): Promise<void>;
}

interface Login {
  address: string;
  deviceId: string;
  revoked: boolean;
  /** Set at MAIL FROM: the sender's own route (mailbox and group certificate). */
  self?: { mailbox: string; certificate: Uint8Array };
  /** Set at MAIL FROM: the user's own profile requires encryption (sender-policy.ts). */
  requireEncryption?: boolean;
  routes: Map<string, Route>;
}

const refusals = {
  authFailed: () => new SmtpReply(535, '5.7.8', 'Authentication credentials invalid'),
  authUnavailable: () =>
    new SmtpReply(454, '4.7.0', 'Temporary authentication failure, try again later'),
  revoked: () => new SmtpReply(421, '4.7.0', 'Device access revoked'),
  rateLimited: (seconds: number) =>
    new SmtpReply(450, '4.7.1', `Sending rate limit reached, try again in ${seconds} s`),
  noKeyForSelf: () => new SmtpReply(451, '4.3.0', 'Your own key is not available, try again later'),
};

export async function startSubmissionServer(
  options: SubmissionServerOptions,
): Promise<SubmissionServer> {
  const logger = options.logger ?? pino({ enabled: false });
  const throttle = new LoginThrottle({
    ...(options.loginFailures === undefined ? {} : { shared: options.loginFailures }),
    onSharedError: (error) =>
      logger.warn({ err: (error as Error).message }, 'shared login failure counts unavailable'),
  });
  const limiter = options.rateLimiter ?? createRateLimiter(options.rateLimit);
  const logins = new Map<string, Login>();
  const commandTimeoutMs = options.commandTimeoutMs ?? 5 * 60_000;
  const dataTimeoutMs = options.dataTimeoutMs ?? 5 * 60_000;
  const inFlight = new Set<Promise<unknown>>();
  let closing = false;

  const authenticate = async (
    username: string,
    password: string,
    session: SMTPServerSession,
  ): Promise<string | undefined> => {
    const account = options.devices.accountOf?.(username) ?? username.trim().toLowerCase();
    const release = await throttle.acquire(session.remoteAddress);
    try {
      const delay = await throttle.delayFor(session.remoteAddress, account);
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      let device;
      try {
        device = await options.devices.authenticate(username, password);
        if (device !== null && !((await options.devices.stillActive?.(device)) ?? true))
          device = null;
      } catch (error) {
        logger.warn({ err: { name: (error as Error).name } }, 'device directory unavailable');
        throw refusals.authUnavailable();
      }
      if (device === null) {
        await throttle.recordFailureShared(session.remoteAddress, account);
        logger.info({ session: session.id }, 'submission login failed');
        throw refusals.authFailed();
      }
      await throttle.recordSuccessShared(account);
      logins.set(session.id, {
        address: device.address,
        deviceId: device.deviceId,
        revoked: false,
        routes: new Map(),
      });
      logger.info(
        { session: session.id, address: device.address, device: device.deviceId },
        'logged in',
      );
      return device.address;
    } finally {
      release();
    }
  };

  const loginOf = (session: SMTPServerSession): Login => {
    const login = logins.get(session.id);
    if (login === undefined) throw new SmtpReply(530, '5.7.0', 'Authentication required');
    if (login.revoked) throw refusals.revoked();
    return login;
  };

  const mailFrom = async (address: string, session: SMTPServerSession): Promise<undefined> => {
    if (closing) throw replies.shuttingDown();
    const login = loginOf(session);
    const identity = await senderIdentity(options.lists, login.address, address).catch(
      (error: unknown) => {
        logger.info({ session: session.id }, 'envelope sender refused');
        throw error;
      },
    );
    if (identity.kind === 'list')
      logger.info(
        { session: session.id, list: identity.list, as: identity.as },
        'sending as a list',
      );
    const bucket = await limiter.take(login.address);
    if (!bucket.allowed) throw refusals.rateLimited(bucket.retryAfterSeconds);
    let self;
    try {
      self = await options.directory.resolve(login.address);
    } catch {
      throw refusals.noKeyForSelf();
    }
    if (self.kind !== 'local') throw refusals.noKeyForSelf();
    login.self = { mailbox: self.mailbox, certificate: self.groupCertificate };
    // The authenticated user's policy, whatever address (a list) they send as.
    login.requireEncryption = await senderRequiresEncryption(options.profiles, login.address);
    login.routes = new Map();
    return undefined;
  };

  const rcptTo = async (address: string, session: SMTPServerSession): Promise<undefined> => {
    const login = loginOf(session);
    const route = await routeRecipient(
      {
        directory: options.directory,
        discovery: options.discovery,
        withoutKey: options.withoutKey,
        senderRequiresEncryption: login.requireEncryption === true,
      },
      address,
      login.address,
    );
    login.routes.set(address.toLowerCase(), route);
    logger.info({ session: session.id, rcpt: address, route: route.kind }, 'recipient routed');
    return undefined;
  };

  const data = async (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
  ): Promise<string> => {
    const collected = await collectMessage(
      stream,
      options.maxSize,
      undefined,
      DEFAULT_HEADER_LIMITS,
    ).catch(() => {
      throw replies.localError();
    });
    if (collected.sizeExceeded || stream.sizeExceeded) throw replies.messageTooBig();
    if (collected.headerViolation !== undefined)
      throw headerReply(collected.headerViolation, DEFAULT_HEADER_LIMITS);
    const login = loginOf(session);
    const received = Buffer.from(
      collected.storage.subarray(collected.head, collected.head + collected.length),
    );
    const view = readHeader(received);
    await checkFromAddresses(options.lists, login.address, writtenFromAddresses(view)).catch(
      (error: unknown) => {
        logger.info({ session: session.id }, 'From header refused');
        throw error;
      },
    );
    const clientEncrypted = isClientEncrypted(view);
    const message = clientEncrypted
      ? received
      : withSubmissionFixups(received, view, options.hostname, new Date());
    // One route per address, however often RCPT named it (one copy, one queue job).
    const routes = [...new Set(session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase()))]
      .map((address) => login.routes.get(address))
      .filter((route): route is Route => route !== undefined);
    const outcome = await sendSubmitted(
      {
        delivery: options.delivery,
        queue: options.queue,
        sentCopies: options.sentCopies,
        hideSubject: options.hideSubject,
        logger: logger.child({ session: session.id }),
      },
      {
        sender: login.address,
        senderMailbox: login.self!.mailbox,
        senderCertificate: login.self!.certificate,
        message,
        clientEncrypted,
        routes,
      },
    );
    logger.info(
      {
        session: session.id,
        bytes: message.byteLength,
        clientEncrypted,
        ...outcome,
        texts: undefined,
      },
      'message submitted',
    );
    const plain = outcome.remotePlain > 0 ? `; ${outcome.remotePlain} sent without encryption` : '';
    return `OK: sent to ${routes.length} recipient${routes.length === 1 ? '' : 's'}${plain} (${session.id})`;
  };

  const servers = [false, true].map(
    (implicitTls) =>
      new EnhancedCodeSmtpServer({
        name: options.hostname,
        banner: 'recrypt gateway submission',
        secure: implicitTls,
        key: options.tls.key,
        cert: options.tls.cert,
        size: options.maxSize,
        rejectOversized: true,
        authMethods: ['PLAIN', 'LOGIN'],
        authOptional: false,
        allowInsecureAuth: false,
        hideENHANCEDSTATUSCODES: false,
        hideDSN: true,
        hideREQUIRETLS: true,
        disableReverseLookup: true,
        maxClients: options.maxClients ?? 100,
        maxRecipients: options.maxRecipients,
        maxCommandLength: 4096,
        socketTimeout: commandTimeoutMs,
        closeTimeout: options.closeTimeoutMs ?? 60_000,
        logger: false,
        onAuth(auth, session, callback) {
          if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') {
            callback(refusals.authFailed());
            return;
          }
          authenticate(auth.username ?? '', auth.password ?? '', session).then(
            (user) => callback(null, { user }),
            (error: unknown) =>
              callback(error instanceof SmtpReply ? error : refusals.authUnavailable()),
          );
        },
        onMailFrom(address, session, callback) {
          settle(mailFrom(address.address, session), callback, logger);
        },
        onRcptTo(address, session, callback) {
          settle(rcptTo(address.address, session), callback, logger);
        },
        onData(stream, session, callback) {
          const task = data(stream, session);
          inFlight.add(task);
          const done = (): void => void inFlight.delete(task);
          task.then(done, done);
          for (const server of servers) server.setIdleTimeout(session, dataTimeoutMs);
          settle(task, callback, logger);
        },
        onClose(session) {
          logins.delete(session.id);
        },
      }),
  );

  const unsubscribe = options.devices.onDeviceRevoked((event) => {
    for (const [id, login] of logins) {
      if (login.address !== event.address) continue;
      if (event.deviceId !== null && event.deviceId !== login.deviceId) continue;
      login.revoked = true;
      for (const server of servers)
        for (const connection of server.connections) {
          if (connection.session.id !== id) continue;
          const reply = refusals.revoked();
          connection.send(reply.responseCode, reply.message);
          connection.close();
        }
      logger.info({ session: id }, 'device revoked: submission session closed');
    }
  });

  const ports: number[] = [];
  try {
    for (const [index, server] of servers.entries()) {
      server.on('error', (error) =>
        logger.warn(
          { err: { name: error.name, message: error.message } },
          'submission connection error',
        ),
      );
      const port = index === 0 ? options.port : options.tlsPort;
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(port, options.host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      const address = server.server.address();
      ports.push(typeof address === 'object' && address !== null ? address.port : port);
    }
  } catch (error) {
    unsubscribe();
    for (const server of servers) server.server.close();
    throw error;
  }
  logger.info({ port: ports[0], tlsPort: ports[1], host: options.host }, 'submission listening');

  return {
    port: ports[0]!,
    tlsPort: ports[1]!,
    setTls(tls) {
      for (const server of servers) server.updateSecureContext({ key: tls.key, cert: tls.cert });
    },
    async close() {
      closing = true;
      unsubscribe();
      const stopped = servers.map(
        (server) => new Promise<void>((resolve) => server.server.close(() => resolve())),
      );
      await Promise.allSettled([...inFlight]);
      for (const server of servers)
        for (const connection of server.connections) {
          const reply = replies.shuttingDown();
          connection.send(reply.responseCode, reply.message);
          connection.close();
        }
      await Promise.all(stopped);
    },
  };
}
