/**
 * The MX: smtp-server configured as a receiving mail exchanger, wired to the narrow ports
 * in ports.ts. RCPT is checked against the directory; DATA is held once in memory, given
 * trace headers, encrypted per recipient group and delivered over LMTP; 250 goes out only
 * once every recipient's copy is stored. See README.md for the reply table.
 */
import { hostname as osHostname } from 'node:os';
import { domainToASCII } from 'node:url';
import pino, { type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type {
  SMTPServerAddress,
  SMTPServerDataStream,
  SMTPServerEnvelope,
  SMTPServerSession,
} from 'smtp-server';
import { requireProxyProtocol, type ProxyProtocolSettings } from '../net/proxy-listener.js';
import { AuthPool } from './auth-pool.js';
import { type CollectedMessage, collectMessage, withPrefix } from './collect.js';
import { EnhancedCodeSmtpServer } from './enhanced-server.js';
import { type LocalRecipient, deliverToGroups, encryptedCopy } from './groups.js';
import { DEFAULT_HEADER_LIMITS, type HeaderLimits } from './header-limits.js';
import { type MxMetrics, createMxMetrics } from './metrics.js';
import type {
  DeliveryTarget,
  DnsResolver,
  MessageEncryptor,
  RecipientDirectory,
  RecipientLookup,
  StoredCopy,
} from './ports.js';
import {
  MAIL_PARAMETERS,
  domainOf,
  headerReply,
  settle,
  unknownParameter,
  withTimeout,
} from './hook-support.js';
import { SmtpReply, replies } from './reply.js';
import { authenticationHeaders, inLineEndingsOf, receivedHeader } from './trace-headers.js';

export interface MxServerOptions {
  /** Listen address; default 127.0.0.1 (the CLI passes 0.0.0.0 from config). */
  host?: string;
  /** 25 in production; a high port for a non-root start; 0 picks a free one. */
  port: number;
  /** PEM key and certificate for STARTTLS; without them STARTTLS is not offered. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Greeting text after "220 <hostname> ESMTP". */
  banner: string;
  /** Our name in the greeting, Received and Authentication-Results; default os.hostname(). */
  hostname?: string;
  /** SIZE limit in bytes; over it: 552 5.3.4. */
  maxSize: number;
  /** Domains served here (any other: 550 5.7.1). Empty: the directory decides alone. */
  localDomains: string[];
  directory: RecipientDirectory;
  encryptor: MessageEncryptor;
  delivery: DeliveryTarget;
  logger?: Logger;
  /** Registry the counters are registered in. */
  metrics?: Registry;
  /** DNS for SPF/DKIM/DMARC; default the system resolver. */
  dnsResolver?: DnsResolver;
  maxClients?: number;
  /** Connections from one address; below maxClients so one address cannot take every slot. */
  maxClientsPerIp?: number;
  maxRecipients?: number;
  /** Idle limit while waiting for a command (greeting to DATA, and between messages). */
  commandTimeoutMs?: number;
  /** Idle limit inside DATA (RFC 5321 §4.5.3.2 gives the sender minutes per data block). */
  socketTimeoutMs?: number;
  /** Header caps checked while DATA streams in (header-limits.ts). */
  headerLimits?: Partial<HeaderLimits>;
  /** DKIM-Signature fields evaluated per message (the topmost); the rest are ignored. */
  maxDkimSignatures?: number;
  /** Worker threads for the SPF/DKIM/DMARC checks (auth-pool.ts). */
  authWorkers?: number;
  /** A directory lookup slower than this is "unavailable": 451. */
  directoryTimeoutMs?: number;
  /**
   * How long mail for a user who has not enrolled yet gets 450 (retry) before 550, counted
   * from the account's creation; default 7 days, an enrolment token's lifetime.
   */
  pendingRecipientGraceMs?: number;
  /** SPF/DKIM/DMARC checks slower than this are stopped and reported as temperror. */
  authTimeoutMs?: number;
  /** How long close() waits for transactions in flight. */
  closeTimeoutMs?: number;
  /**
   * Only these balancers may connect, each connection starting with a PROXY header whose
   * client address the session sees (src/net/proxy-listener.ts); off when absent.
   */
  proxyProtocol?: ProxyProtocolSettings;
  /**
   * Called once every copy of a message is stored, with the message as received and the
   * trace headers the MX made (its Authentication-Results). Must not keep `message` (its
   * buffer is reused) nor wait: the reply is not held for it.
   */
  onStored?(message: Uint8Array, traceHeaders: string): void;
  /**
   * Called for each recipient group's copy once the store took it (before the reply):
   * must only take note and return; the reply is not held for it, and a throw is logged.
   */
  onCopyStored?(copy: StoredCopy): void;
}

export interface MxServer {
  port: number;
  metrics: MxMetrics;
  /** Replaces the STARTTLS certificate for new connections (SIGHUP). */
  setTls(tls: { key: string | Buffer; cert: string | Buffer }): void;
  /** Stops accepting, lets every DATA in flight finish and answer, then says 421 to idle clients. */
  close(): Promise<void>;
}

export async function startMxServer(options: MxServerOptions): Promise<MxServer> {
  const logger = options.logger ?? pino({ enabled: false });
  const metrics = createMxMetrics(options.metrics);
  const hostname = options.hostname ?? osHostname();
  const localDomains = new Set(
    options.localDomains.map((domain) => domainToASCII(domain.toLowerCase())),
  );
  const directoryTimeoutMs = options.directoryTimeoutMs ?? 10_000;
  const pendingGraceMs = options.pendingRecipientGraceMs ?? 7 * 24 * 3600 * 1000;
  const authTimeoutMs = options.authTimeoutMs ?? 20_000;
  const headerLimits = { ...DEFAULT_HEADER_LIMITS, ...options.headerLimits };
  const commandTimeoutMs = options.commandTimeoutMs ?? 60_000;
  const dataTimeoutMs = options.socketTimeoutMs ?? 5 * 60_000;
  const maxClientsPerIp = options.maxClientsPerIp ?? 20;
  const authPool = new AuthPool({
    ...(options.authWorkers !== undefined ? { size: options.authWorkers } : {}),
    ...(options.dnsResolver !== undefined ? { resolver: options.dnsResolver } : {}),
  });
  authPool.warm();
  const recipientsOf = new WeakMap<SMTPServerEnvelope, Map<string, LocalRecipient>>();
  // Lists: per list address (or list control address), what to do with the message.
  type ListLookup = Extract<RecipientLookup, { kind: 'list' | 'list-command' }>;
  const listsOf = new WeakMap<SMTPServerEnvelope, Map<string, ListLookup>>();
  const inFlight = new Set<Promise<unknown>>();
  let closing = false;
  let closed: Promise<void> | undefined;

  const checkRecipient = async (
    address: SMTPServerAddress,
    session: SMTPServerSession,
  ): Promise<undefined> => {
    const domain = domainOf(address.address);
    // `RCPT TO:<Postmaster>` without a domain MUST be accepted (RFC 5321 §4.1.1.3, §4.5.1):
    // the directory resolves it like postmaster@ of a served domain.
    const barePostmaster = address.address.toLowerCase() === 'postmaster';
    if (domain === undefined && !barePostmaster) throw replies.badAddress();
    if (domain !== undefined && localDomains.size > 0 && !localDomains.has(domain)) {
      metrics.recipientsRejected.inc({ reason: 'relay' });
      logger.info({ session: session.id, rcpt: address.address }, 'relay denied');
      throw replies.relayDenied();
    }
    let lookup: RecipientLookup;
    try {
      lookup = await withTimeout(options.directory.resolve(address.address), directoryTimeoutMs);
    } catch (error) {
      metrics.recipientsRejected.inc({ reason: 'unavailable' });
      logger.warn(
        {
          session: session.id,
          err: { name: (error as Error).name, message: (error as Error).message },
        },
        'directory unavailable',
      );
      throw replies.directoryUnavailable();
    }
    // A directory that knows no postmaster: unknown here, no relay attempt.
    if (barePostmaster && lookup.kind === 'not-local') lookup = { kind: 'unknown' };
    if (lookup.kind === 'not-local') {
      metrics.recipientsRejected.inc({ reason: 'relay' });
      throw replies.relayDenied();
    }
    if (lookup.kind === 'pending') {
      const waiting = Date.now() - lookup.since < pendingGraceMs;
      metrics.recipientsRejected.inc({ reason: 'pending' });
      logger.info(
        { session: session.id, rcpt: address.address, waiting },
        'recipient not enrolled yet',
      );
      throw waiting ? replies.notEnrolledYet() : replies.neverEnrolled();
    }
    if (lookup.kind === 'unknown') {
      metrics.recipientsRejected.inc({ reason: 'unknown' });
      logger.info({ session: session.id, rcpt: address.address }, 'unknown recipient');
      throw replies.unknownUser();
    }
    if (lookup.kind === 'list' || lookup.kind === 'list-command') {
      const mailFrom = session.envelope.mailFrom;
      const refusal = lookup.refusalFor(mailFrom === false ? '' : mailFrom.address);
      if (refusal !== null) {
        metrics.recipientsRejected.inc({ reason: 'list-policy' });
        logger.info({ session: session.id, rcpt: address.address }, 'list post refused by policy');
        throw new SmtpReply(550, '5.7.1', refusal);
      }
      const lists = listsOf.get(session.envelope) ?? new Map<string, ListLookup>();
      lists.set(address.address.toLowerCase(), lookup);
      listsOf.set(session.envelope, lists);
      return undefined;
    }
    const recipients = recipientsOf.get(session.envelope) ?? new Map<string, LocalRecipient>();
    recipients.set(address.address.toLowerCase(), {
      address: address.address,
      mailbox: lookup.mailbox,
      groupCertificate: lookup.groupCertificate,
      ...(lookup.owner !== undefined ? { owner: lookup.owner } : {}),
      ...(lookup.formerGroupCertificates !== undefined
        ? { formerGroupCertificates: lookup.formerGroupCertificates }
        : {}),
    });
    recipientsOf.set(session.envelope, recipients);
    return undefined;
  };

  const handleData = async (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
  ): Promise<string> => {
    const started = Date.now();
    const declaredSize =
      session.envelope.mailFrom !== false && session.envelope.mailFrom.args !== false
        ? session.envelope.mailFrom.args.SIZE
        : undefined;
    let collected: CollectedMessage;
    try {
      collected = await collectMessage(
        stream,
        options.maxSize,
        typeof declaredSize === 'string' ? Number(declaredSize) : undefined,
        headerLimits,
      );
    } catch (error) {
      // The client went away mid-DATA: nothing was acknowledged, nothing is kept.
      logger.info(
        { session: session.id, err: { name: (error as Error).name } },
        'DATA aborted by the client',
      );
      throw replies.localError();
    }
    const envelope = session.envelope;
    const known = recipientsOf.get(envelope);
    const recipients = envelope.rcptTo
      .map((rcpt) => known?.get(rcpt.address.toLowerCase()))
      .filter((recipient): recipient is LocalRecipient => recipient !== undefined);
    const log = { session: session.id, bytes: collected.length, recipients: recipients.length };
    if (collected.sizeExceeded || stream.sizeExceeded) {
      metrics.messages.inc({ outcome: 'rejected' });
      logger.info(log, 'message over the size limit');
      // smtp-server answers 552 5.3.4 itself (rejectOversized).
      throw replies.messageTooBig();
    }
    if (collected.headerViolation !== undefined) {
      metrics.messages.inc({ outcome: 'rejected' });
      logger.info({ ...log, limit: collected.headerViolation }, 'message header over a limit');
      throw headerReply(collected.headerViolation, headerLimits);
    }
    const lists = [...(listsOf.get(envelope)?.values() ?? [])];
    if (recipients.length === 0 && lists.length === 0) throw replies.storeUnavailable();
    const mailFrom = envelope.mailFrom === false ? '' : envelope.mailFrom.address;
    const trace = {
      hostname,
      sessionId: session.id,
      remoteAddress: session.remoteAddress,
      helo: session.hostNameAppearsAs,
      mailFrom,
      recipients: envelope.rcptTo.map((rcpt) => rcpt.address),
      secure: session.secure,
      smtpUtf8: envelope.smtpUtf8 === true,
      now: new Date(),
    };
    const received = collected.storage.subarray(collected.head, collected.head + collected.length);
    const traceHeaders = Buffer.from(
      inLineEndingsOf(
        receivedHeader(trace) +
          (await authenticationHeaders(received, trace, authPool, {
            timeoutMs: authTimeoutMs,
            maxDkimSignatures: options.maxDkimSignatures ?? 5,
          })),
        received,
      ),
      'utf8',
    );
    // The one copy of the message: trace headers, then the bytes as received.
    const withTrace = withPrefix(collected, traceHeaders);
    const deps = {
      encryptor: options.encryptor,
      delivery: options.delivery,
      logger: logger.child({ session: session.id }),
      metrics,
      ...(options.onCopyStored === undefined ? {} : { onCopyStored: options.onCopyStored }),
    };
    try {
      const original = withTrace.subarray(traceHeaders.length);
      const outcome =
        recipients.length === 0
          ? { encrypted: 0, passedThrough: 0 }
          : await deliverToGroups(deps, { withTrace, original, mailFrom, recipients });
      const texts: string[] = [];
      if (recipients.length > 0)
        texts.push(
          `stored for ${recipients.length} recipient${recipients.length === 1 ? '' : 's'}`,
        );
      for (const list of lists) {
        if (list.kind !== 'list') continue;
        // A post to a list: its headers go in before encryption, then one copy for all.
        // An envelope the sender already made for the list certificate passes as is.
        const prepared = Buffer.concat([traceHeaders, list.prepare(original)]);
        const copy = await encryptedCopy(
          deps,
          { withTrace: prepared, original },
          list.groupCertificate,
          {
            list: true,
          },
        );
        if (copy.passThrough) outcome.passedThrough += 1;
        else outcome.encrypted += 1;
        texts.push(await list.accept(mailFrom, copy.payload));
      }
      // Control addresses act last: nothing above may fail after a member has left.
      for (const command of lists)
        if (command.kind === 'list-command') texts.push(await command.run(mailFrom));
      metrics.messages.inc({ outcome: 'accepted' });
      logger.info({ ...log, ...outcome, ms: Date.now() - started }, 'message accepted');
      try {
        // Stored: harvesting (src/keydir) copies what it needs now and looks later.
        options.onStored?.(original, traceHeaders.toString('latin1'));
      } catch (error) {
        logger.warn({ err: { name: (error as Error).name } }, 'after-delivery hook failed');
      }
      return `OK: ${texts.join('; ')} (${session.id})`;
    } catch (error) {
      const reply = error instanceof SmtpReply ? error : replies.storeUnavailable();
      metrics.messages.inc({ outcome: reply.responseCode < 500 ? 'temp_failed' : 'rejected' });
      logger.warn(
        { ...log, code: reply.responseCode, ms: Date.now() - started },
        'message not accepted',
      );
      throw reply;
    }
  };

  const server = new EnhancedCodeSmtpServer({
    name: hostname,
    banner: options.banner,
    ...(options.tls !== undefined
      ? { key: options.tls.key, cert: options.tls.cert }
      : { hideSTARTTLS: true }),
    size: options.maxSize,
    rejectOversized: true,
    authOptional: true,
    disabledCommands: ['AUTH'],
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    disableReverseLookup: true,
    maxClients: options.maxClients ?? 100,
    maxRecipients: options.maxRecipients ?? 100,
    maxCommandLength: 4096,
    socketTimeout: commandTimeoutMs,
    closeTimeout: options.closeTimeoutMs ?? 60_000,
    logger: false,
    onConnect(session, callback) {
      if (server.connectionsFrom(session.remoteAddress) <= maxClientsPerIp) {
        callback();
        return;
      }
      logger.info({ session: session.id, ip: session.remoteAddress }, 'too many connections');
      callback(replies.tooManyFromAddress());
    },
    onMailFrom(address, _session, callback) {
      if (closing) callback(replies.shuttingDown());
      else callback(unknownParameter(address, MAIL_PARAMETERS) ? replies.unknownParameter() : null);
    },
    onRcptTo(address, session, callback) {
      if (unknownParameter(address, new Set())) {
        callback(replies.unknownParameter());
        return;
      }
      settle(checkRecipient(address, session), callback, logger);
    },
    onData(stream, session, callback) {
      server.setIdleTimeout(session, dataTimeoutMs);
      const task = handleData(stream, session);
      inFlight.add(task);
      const done = (): void => {
        inFlight.delete(task);
        server.setIdleTimeout(session, commandTimeoutMs);
      };
      task.then(done, done);
      settle(task, callback, logger);
    },
  });
  server.on('error', (error) =>
    logger.warn({ err: { name: error.name, message: error.message } }, 'smtp connection error'),
  );
  if (options.proxyProtocol !== undefined)
    requireProxyProtocol(server.server, options.proxyProtocol, { logger, listener: 'smtp' });

  try {
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(options.port, options.host ?? '127.0.0.1', () => {
        server.server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // The auth worker would keep a process that failed to start alive.
    await authPool.close();
    throw error;
  }
  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  logger.info({ port, host: options.host ?? '127.0.0.1' }, 'MX listening');

  return {
    port,
    metrics,
    setTls: (tls) => server.updateSecureContext({ key: tls.key, cert: tls.cert }),
    close: () => {
      closed ??= shutdown();
      return closed;
    },
  };

  async function shutdown(): Promise<void> {
    closing = true;
    const stopped = new Promise<void>((resolve) => server.server.close(() => resolve()));
    const graceMs = options.closeTimeoutMs ?? 60_000;
    // A DATA may start after close() (its MAIL FROM came before): wait for those too.
    const deadline = Date.now() + graceMs;
    while (inFlight.size > 0 && Date.now() < deadline) {
      await withTimeout(Promise.allSettled([...inFlight]), deadline - Date.now()).catch(
        () => undefined,
      );
    }
    for (const connection of server.connections) {
      const reply = replies.shuttingDown();
      connection.send(reply.responseCode, reply.message);
      connection.close();
    }
    await stopped;
    await authPool.close();
  }
}
