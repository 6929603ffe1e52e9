/**
 * Local SMTP submission (README.md, "Sending"): a client sends to 127.0.0.1 with the local
 * password, and the bridge passes the message on, as it is, to the gateway's submission
 * service with the device's credentials (src/submission encrypts it to every recipient
 * whose key it finds and files the Sent copy). The gateway's reply to a refused message
 * is the client's reply, so a client sees the same errors as when it talks to submission
 * itself (docs/sending.md).
 */
import { once } from 'node:events';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createTransport } from 'nodemailer';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { collectMessage } from '../smtp/collect.js';

export interface SubmissionSettings {
  host: string;
  port: number;
  /** `implicit`: TLS from the first byte (465); `starttls`: STARTTLS required (587). */
  tls: 'implicit' | 'starttls';
  ca?: string;
}

export interface SmtpRelayOptions {
  host: string;
  port: number;
  /** Offered with STARTTLS; none with the plain loopback option. */
  tls: { key: string; cert: string } | null;
  user: string;
  localPassword: string;
  upstream: SubmissionSettings & { password: string };
  /** Bigger messages are refused before they are forwarded (the gateway's default is 50 MiB). */
  maxMessageBytes?: number;
}

export interface SmtpRelay {
  port: number;
  close(): Promise<void>;
}

function same(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** An SMTP reply for the client: the gateway's own (code and text), or 451 when it did not answer. */
function replyError(error: unknown): Error & { responseCode: number } {
  const upstream = error as { responseCode?: number; response?: string; message?: string };
  const code =
    typeof upstream.responseCode === 'number' && upstream.responseCode >= 400
      ? upstream.responseCode
      : 451;
  const text =
    typeof upstream.response === 'string'
      ? upstream.response.replace(/^\d{3}[ -]/, '').split(/\r?\n/)[0]!
      : '4.4.1 the gateway did not answer; try again later';
  return Object.assign(new Error(text), { responseCode: code });
}

export async function startSmtpRelay(options: SmtpRelayOptions): Promise<SmtpRelay> {
  const maxBytes = options.maxMessageBytes ?? 50 * 1024 * 1024;
  const up = options.upstream;
  const transport = createTransport({
    host: up.host,
    port: up.port,
    secure: up.tls === 'implicit',
    requireTLS: up.tls === 'starttls',
    tls: up.ca !== undefined ? { ca: up.ca } : {},
    auth: { user: options.user, pass: up.password },
    pool: false,
  });
  const server = new SMTPServer({
    name: 'recrypt-bridge',
    banner: 'recrypt bridge submission',
    size: maxBytes,
    authMethods: ['PLAIN', 'LOGIN'],
    // Loopback only: a client that will not STARTTLS may still log in (docs/bridge.md).
    allowInsecureAuth: true,
    ...(options.tls !== null
      ? { key: options.tls.key, cert: options.tls.cert }
      : { disabledCommands: ['STARTTLS'] }),
    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, callback) {
      const ok =
        auth.username?.toLowerCase() === options.user.toLowerCase() &&
        same(auth.password ?? '', options.localPassword);
      if (!ok)
        return callback(
          Object.assign(new Error('5.7.8 Authentication failed'), { responseCode: 535 }),
        );
      callback(null, { user: options.user });
    },
    onData(stream, session, callback) {
      collectMessage(stream, maxBytes)
        .then(async (collected) => {
          if (collected.sizeExceeded)
            throw Object.assign(new Error('5.3.4 Message too big'), { responseCode: 552 });
          const raw = Buffer.from(
            collected.storage.subarray(collected.head, collected.head + collected.length),
          );
          const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
          await transport
            .sendMail({
              envelope: { from, to: session.envelope.rcptTo.map((r) => r.address) },
              raw,
            })
            .catch((error: unknown) => {
              throw replyError(error);
            });
        })
        .then(
          () => callback(),
          (error: Error) => callback(error),
        );
    },
  });
  server.on('error', () => undefined);
  server.listen(options.port, options.host);
  await once(server.server, 'listening');
  return {
    port: (server.server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        transport.close();
        server.close(() => resolve());
      }),
  };
}
