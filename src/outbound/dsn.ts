/**
 * The delivery status notification (RFC 3464) for a job that failed for good: a
 * multipart/report with a human-readable part, the machine-readable
 * message/delivery-status, and the original's header block (text/rfc822-headers). Never
 * its body: the body may be large, and a bounce must not carry content back out.
 */
import { randomBytes } from 'node:crypto';
import type { JobMeta } from './queue-store.js';

export interface DsnFailure {
  /** RFC 3463 status, e.g. 5.1.1, or 4.4.7 for a message that expired. */
  status: string;
  /** The remote's reply line or the local reason. */
  reason: string;
  /** `reason` is an SMTP reply (Diagnostic-Code type smtp) rather than our own words. */
  smtpReply: boolean;
  /** The server that answered, if one did. */
  remoteMta?: string;
  /** The job ran out of time (bounceAfter) rather than being refused. */
  expired: boolean;
}

export interface DsnInput {
  job: JobMeta;
  failure: DsnFailure;
  /** The original's header block, as stored (CRLF line ends). */
  originalHeaders: Uint8Array;
  /** Our host name (Reporting-MTA, the From address's domain). */
  reportingMta: string;
  /** bounceAfter, for the human-readable text of an expired job. */
  bounceAfterMs: number;
  now: number;
}

const NOT_PLAIN_ASCII = /[^\t\r\n\x20-\x7e]/;

/** RFC 5322 date-time in UTC. */
function mailDate(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

function humanDuration(ms: number): string {
  const units: Array<[number, string]> = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms / size === 1 ? '' : 's'}`;
  }
  return `${ms} ms`;
}

/** A text part: 7bit when it is ASCII, else base64 (no 8BITMIME needed on the way back). */
function textPart(contentType: string, text: string): string {
  if (!NOT_PLAIN_ASCII.test(text)) {
    return `Content-Type: ${contentType}\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${text}`;
  }
  const base64 = Buffer.from(text, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n');
  return `Content-Type: ${contentType}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}\r\n`;
}

function crlf(lines: string[]): string {
  return lines.map((line) => `${line}\r\n`).join('');
}

export function buildDsn(input: DsnInput): Buffer {
  const { job, failure, reportingMta } = input;
  const boundary = `=_recrypt-dsn-${randomBytes(12).toString('hex')}`;
  const origin = Object.entries(job.origin ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
  const why = failure.expired
    ? `It could not be delivered within ${humanDuration(input.bounceAfterMs)}; the last attempt said:`
    : 'The receiving side said:';
  const human = crlf([
    `This is the mail system at ${reportingMta}.`,
    '',
    `Your message could not be delivered to <${job.to}>.`,
    '',
    why,
    `    ${failure.reason}`,
    '',
    `About the message: ${origin === '' ? 'queued by the gateway' : origin}; queued ${mailDate(job.created)}; ${job.attempts} attempt(s); queue id ${job.id}.`,
    '',
    'The headers of your message are attached below; its content is not.',
  ]);

  const utf8Recipient = NOT_PLAIN_ASCII.test(job.to);
  const status = crlf([
    `Reporting-MTA: dns; ${reportingMta}`,
    `X-Recrypt-Queue-ID: ${job.id}`,
    `Arrival-Date: ${mailDate(job.created)}`,
    '',
    `Final-Recipient: ${utf8Recipient ? 'utf-8' : 'rfc822'}; ${job.to}`,
    'Action: failed',
    `Status: ${failure.status}`,
    ...(failure.remoteMta === undefined ? [] : [`Remote-MTA: dns; ${failure.remoteMta}`]),
    `Diagnostic-Code: ${failure.smtpReply ? 'smtp' : 'X-Recrypt'}; ${failure.reason}`,
    `Last-Attempt-Date: ${mailDate(input.now)}`,
  ]);
  // RFC 6533: an internationalised address needs the global report type.
  const statusType = utf8Recipient ? 'message/global-delivery-status' : 'message/delivery-status';
  const headers = Buffer.from(input.originalHeaders);
  const headersEncoding = headers.some((byte) => byte > 0x7f) ? '8bit' : '7bit';

  const head = crlf([
    `From: Mail Delivery System <MAILER-DAEMON@${reportingMta}>`,
    `To: <${job.mailFrom}>`,
    'Subject: Undelivered Mail Returned to Sender',
    `Date: ${mailDate(input.now)}`,
    `Message-ID: <${job.id}.dsn.${randomBytes(4).toString('hex')}@${reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a delivery status notification (RFC 3464).',
    '',
  ]);
  return Buffer.concat([
    Buffer.from(head),
    Buffer.from(`--${boundary}\r\n${textPart('text/plain', human)}\r\n`),
    Buffer.from(`--${boundary}\r\n${textPart(statusType, status)}\r\n`),
    Buffer.from(
      `--${boundary}\r\nContent-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: ${headersEncoding}\r\n\r\n`,
    ),
    headers,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}
