/**
 * One delivery attempt of one job: nodemailer's SMTP client, one connection per hop, the
 * hops tried in order until one gives an SMTP answer. Turns what happened into an
 * outcome the worker acts on: sent, temporary (retry) or permanent (bounce).
 *
 * TLS: STARTTLS whenever the server offers it. Unless `requireTls` or `verifyTls` is set
 * the certificate is not verified: most MX hosts present certificates that do not match
 * their MX name or are self-signed, and RFC 7435 (opportunistic security) says encrypting
 * without authentication beats refusing and falling back to plaintext. A TLS handshake
 * that fails is retried once on the same hop in plaintext, as other MTAs do. A relay with
 * credentials always needs TLS with a verified certificate: a password is never sent to a
 * server we cannot name. A hop that MTA-STS or DANE requires TLS for (transport-security.ts)
 * never falls back: MTA-STS checks the certificate against the CAs for the MX name, DANE
 * against the host's TLSA records (dane.ts).
 */
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import nodemailer from 'nodemailer';
import type { OutboundConfig } from '../config/schema.js';
import { DaneMismatch, sendWithDane, type DaneAttempt } from './dane.js';
import type { Hop } from './routing.js';

export type AttemptOutcome =
  | { kind: 'sent'; reply: string; host: string }
  | {
      kind: 'failed';
      permanent: boolean;
      /** RFC 3463 status, e.g. 5.1.1 (taken from the reply when it carries one). */
      status: string;
      /** The remote's reply line, or what went wrong locally (never message content). */
      reason: string;
      /** True when `reason` is an SMTP reply (DSN Diagnostic-Code type "smtp"). */
      smtpReply: boolean;
      host?: string;
    };

export type TlsSettings = Pick<
  OutboundConfig,
  'requireTls' | 'verifyTls' | 'connectTimeout' | 'greetingTimeout' | 'socketTimeout'
> & {
  heloName: string;
  /** Extra trust anchors (PEM) for MTA-STS hosts, besides the system's (`outbound.mtaSts.caFile`). */
  extraCa?: string;
};

export interface DkimKey {
  domainName: string;
  keySelector: string;
  privateKey: string;
}

export interface Envelope {
  mailFrom: string;
  to: string;
  /** A file to stream (the disk queue) or the bytes (the Redis queue). */
  message: { path: string } | Buffer;
  /** Signs the message on its way out (nodemailer's DKIM signer, relaxed/relaxed). */
  dkim?: DkimKey;
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
}

const ENHANCED_STATUS = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/;

function oneLine(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .trim()
    .slice(0, 500);
}

/** Closes every connection still open; the worker calls it when it stops. */
export class ConnectionTracker {
  private readonly open = new Set<{ close(): void }>();

  track<T extends { close(): void }>(transport: T): T {
    this.open.add(transport);
    return transport;
  }

  release(transport: { close(): void }): void {
    this.open.delete(transport);
    transport.close();
  }

  closeAll(): void {
    for (const transport of this.open) transport.close();
    this.open.clear();
  }
}

export async function attemptDelivery(
  envelope: Envelope,
  hops: Hop[],
  settings: TlsSettings,
  connections: ConnectionTracker,
): Promise<AttemptOutcome> {
  let last: AttemptOutcome | undefined;
  for (const hop of hops) {
    if (hop.require?.kind === 'dane') {
      const outcome = await sendViaDane(
        { ...hop, require: hop.require },
        envelope,
        settings,
        connections,
      );
      if (outcome.kind === 'sent' || outcome.permanent) return outcome;
      last = moreTelling(last, outcome);
      continue;
    }
    const first = await sendVia(hop, envelope, settings, connections, false);
    const outcome =
      first.tlsFailed && mayFallBackToPlaintext(hop, settings)
        ? (await sendVia(hop, envelope, settings, connections, true)).outcome
        : first.outcome;
    if (outcome.kind === 'sent' || outcome.permanent) return outcome;
    last = moreTelling(last, outcome);
  }
  return (
    last ?? {
      kind: 'failed',
      permanent: false,
      status: '4.4.1',
      reason: 'no host to try',
      smtpReply: false,
    }
  );
}

/**
 * The failure an attempt reports: the last one, except that a server's reply (say 451 on
 * a host's IPv4 address) beats a later hop that gave none (its IPv6 address unreachable).
 */
function moreTelling(
  earlier: AttemptOutcome | undefined,
  later: AttemptOutcome & { kind: 'failed' },
): AttemptOutcome {
  return earlier?.kind === 'failed' && earlier.smtpReply && !later.smtpReply ? earlier : later;
}

function mayFallBackToPlaintext(hop: Hop, settings: TlsSettings): boolean {
  return (
    !settings.requireTls &&
    !settings.verifyTls &&
    !hop.secure &&
    hop.auth === undefined &&
    hop.require === undefined
  );
}

async function sendVia(
  hop: Hop,
  envelope: Envelope,
  settings: TlsSettings,
  connections: ConnectionTracker,
  plaintext: boolean,
): Promise<{ outcome: AttemptOutcome; tlsFailed: boolean }> {
  const credentials = hop.auth !== undefined;
  // MTA-STS enforce (transport-security.ts): TLS with a certificate valid for the MX name.
  const mustTls = settings.requireTls || credentials || hop.require !== undefined;
  const verify =
    settings.requireTls || settings.verifyTls || credentials || hop.require?.kind === 'pkix';
  const transport = connections.track(
    nodemailer.createTransport({
      host: hop.address ?? hop.host,
      port: hop.port,
      secure: hop.secure,
      name: settings.heloName,
      ignoreTLS: plaintext,
      requireTLS: !hop.secure && mustTls,
      opportunisticTLS: !mustTls,
      tls: {
        rejectUnauthorized: verify,
        ...(settings.extraCa === undefined ? {} : { ca: [...rootCertificates, settings.extraCa] }),
        ...(isIP(hop.host) === 0 ? { servername: hop.host } : {}),
      },
      ...(hop.auth === undefined ? {} : { auth: hop.auth }),
      connectionTimeout: settings.connectTimeout,
      greetingTimeout: settings.greetingTimeout,
      socketTimeout: settings.socketTimeout,
      logger: false,
    }),
  );
  try {
    const info = (await transport.sendMail({
      envelope: { from: envelope.mailFrom, to: [envelope.to] },
      raw: envelope.message,
      ...(envelope.dkim === undefined ? {} : { dkim: envelope.dkim }),
    })) as { response?: string };
    return {
      outcome: { kind: 'sent', reply: oneLine(info.response ?? '250'), host: hop.host },
      tlsFailed: false,
    };
  } catch (error) {
    const failure = error as SmtpError;
    const tlsFailed =
      failure.responseCode === undefined &&
      (failure.code === 'ETLS' || /certificate|SSL|TLS/i.test(failure.message));
    return { outcome: classify(failure, hop.host, tlsFailed), tlsFailed };
  } finally {
    connections.release(transport);
  }
}

async function sendViaDane(
  hop: DaneAttempt['hop'],
  envelope: Envelope,
  settings: TlsSettings,
  connections: ConnectionTracker,
): Promise<AttemptOutcome> {
  let connection: { close(): void } | undefined;
  try {
    const reply = await sendWithDane(
      {
        hop,
        heloName: settings.heloName,
        connectTimeout: settings.connectTimeout,
        greetingTimeout: settings.greetingTimeout,
        socketTimeout: settings.socketTimeout,
        mailFrom: envelope.mailFrom,
        to: envelope.to,
        message: envelope.message,
        ...(envelope.dkim === undefined ? {} : { dkim: envelope.dkim }),
      },
      (opened) => (connection = connections.track(opened)),
    );
    return { kind: 'sent', reply: oneLine(reply), host: hop.host };
  } catch (error) {
    if (error instanceof DaneMismatch)
      return {
        kind: 'failed',
        permanent: false,
        status: '4.7.5',
        reason: oneLine(error.message),
        smtpReply: false,
        host: hop.host,
      };
    const failure = error as SmtpError;
    const tlsFailed =
      failure.responseCode === undefined &&
      (failure.code === 'ETLS' || /certificate|SSL|TLS/i.test(failure.message));
    return classify(failure, hop.host, tlsFailed);
  } finally {
    if (connection !== undefined) connections.release(connection);
  }
}

function classify(error: SmtpError, host: string, tlsFailed: boolean): AttemptOutcome {
  if (error.responseCode !== undefined && error.response !== undefined) {
    const reply = oneLine(error.response);
    const permanent = error.responseCode >= 500;
    const status = ENHANCED_STATUS.exec(reply)?.[1] ?? (permanent ? '5.0.0' : '4.0.0');
    return { kind: 'failed', permanent, status, reason: reply, smtpReply: true, host };
  }
  if (error.code === 'EENVELOPE') {
    // nodemailer refused the address before sending it: no server would take it either.
    return {
      kind: 'failed',
      permanent: true,
      status: '5.1.3',
      reason: oneLine(error.message),
      smtpReply: false,
      host,
    };
  }
  const reason = oneLine(`${host}: ${tlsFailed ? 'TLS: ' : ''}${error.message}`);
  return { kind: 'failed', permanent: false, status: '4.4.1', reason, smtpReply: false, host };
}
