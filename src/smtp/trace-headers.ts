/**
 * The trace headers the MX adds on top of the message before encryption, so that the
 * reader finds them inside the envelope: Received (RFC 5321 §4.4, RFC 6531 §3.7.3) and
 * Received-SPF + Authentication-Results (RFC 8601) from mailauth's SPF, DKIM and DMARC
 * checks. The message itself is never changed; these lines are only prepended, in the
 * message's own line-ending style (`inLineEndingsOf`), so a message that arrived with
 * LF-only lines does not become a mix of CRLF trace fields above LF headers.
 */
import type { AuthPool } from './auth-pool.js';

export interface TraceInput {
  /** This MX's host name (Received "by", Authentication-Results authserv-id). */
  hostname: string;
  sessionId: string;
  remoteAddress: string;
  /** What the client said in EHLO/HELO (untrusted). */
  helo: string;
  /** MAIL FROM, '' for the null sender. */
  mailFrom: string;
  /** RCPT TO addresses; "for" is written only for a single recipient (not to list Bcc). */
  recipients: string[];
  secure: boolean;
  smtpUtf8: boolean;
  now: Date;
}

/** Printable ASCII only and bounded: client-chosen text must not break the header. */
function headerSafe(value: string, max = 255): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '');
  return (clean.length > 0 ? clean : 'unknown').slice(0, max);
}

function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

export function receivedHeader(input: TraceInput): string {
  const protocol = `${input.smtpUtf8 ? 'UTF8SMTP' : 'ESMTP'}${input.secure ? 'S' : ''}`;
  const ip = input.remoteAddress.includes(':')
    ? `IPv6:${input.remoteAddress}`
    : input.remoteAddress;
  const single = input.recipients.length === 1 ? input.recipients[0] : undefined;
  // A UTF-8 address is allowed in a "for" clause only under SMTPUTF8; it is kept out otherwise.
  const forClause =
    single !== undefined && (input.smtpUtf8 || /^[\x21-\x7e]+$/.test(single))
      ? `\r\n\tfor <${single.replace(/[\r\n<>]/g, '')}>`
      : '';
  return (
    `Received: from ${headerSafe(input.helo)} ([${headerSafe(ip, 64)}])\r\n` +
    `\tby ${headerSafe(input.hostname)} with ${protocol} id ${headerSafe(input.sessionId, 64)}` +
    `${forClause};\r\n\t${rfc5322Date(input.now)}\r\n`
  );
}

/**
 * Received-SPF and Authentication-Results lines (CRLF-terminated) for the message, from
 * the checks run in the authentication pool's workers on a bounded view of it
 * (auth-input.ts). A failing or slow check never rejects mail: it is reported as temperror.
 */
export async function authenticationHeaders(
  message: Buffer,
  input: TraceInput,
  pool: AuthPool,
  options: { timeoutMs: number; maxDkimSignatures: number },
): Promise<string> {
  try {
    return await pool.check(
      {
        message,
        ip: input.remoteAddress,
        helo: input.helo,
        sender: input.mailFrom,
        mta: input.hostname,
        maxDkimSignatures: options.maxDkimSignatures,
      },
      options.timeoutMs,
    );
  } catch {
    return (
      `Authentication-Results: ${headerSafe(input.hostname)};\r\n` +
      ` spf=temperror; dkim=temperror; dmarc=temperror\r\n`
    );
  }
}

/**
 * `fields` (CRLF-terminated) in the line endings of `message`, as its first line ends:
 * CRLF, or LF for a message that arrived with bare LF lines (which SMTP does not allow
 * but smtp-server accepts, and which the MX stores byte for byte: docs/clients.md).
 */
export function inLineEndingsOf(fields: string, message: Uint8Array): string {
  const lf = message.indexOf(10);
  if (lf === -1 || (lf > 0 && message[lf - 1] === 13)) return fields;
  return fields.replace(/\r\n/g, '\n');
}
