/**
 * What submission reads and changes in a message before it is sent (RFC 6409 §8): the
 * From addresses (checked by sender-identity.ts), the usual fix-ups (Date
 * and Message-ID added when missing, nothing else touched), and whether the client
 * already encrypted it (S/MIME EnvelopedData: then it passes through byte for byte).
 * Only the header section is read, and at most `MAX_HEADER_SCAN` bytes of it.
 */
import { randomUUID } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';

/** The header section is capped by the collector already; this bounds the scan again. */
const MAX_HEADER_SCAN = 256 * 1024;

export interface HeaderView {
  /** Offset of the body (after the empty line); the message length when there is none. */
  bodyStart: number;
  /** Unfolded fields, names lower-cased, in order. */
  fields: Array<{ name: string; value: string }>;
  /** The line ending the message uses ("\r\n" unless its first line ends in a bare "\n"). */
  eol: string;
}

export function readHeader(message: Uint8Array): HeaderView {
  const text = Buffer.from(
    message.buffer,
    message.byteOffset,
    Math.min(message.byteLength, MAX_HEADER_SCAN),
  ).toString('latin1');
  const firstLf = text.indexOf('\n');
  const eol = firstLf > 0 && text[firstLf - 1] !== '\r' ? '\n' : '\r\n';
  const blank = /\r?\n\r?\n/.exec(text);
  const headerEnd = blank === null ? text.length : blank.index;
  const bodyStart = blank === null ? message.byteLength : blank.index + blank[0].length;
  const fields: HeaderView['fields'] = [];
  for (const line of text.slice(0, headerEnd).split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length > 0) {
      fields[fields.length - 1]!.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1) });
  }
  return { bodyStart, fields, eol };
}

function field(view: HeaderView, name: string): string | undefined {
  return view.fields.find((f) => f.name === name)?.value;
}

/** The addresses of every From field as written, trimmed (groups flattened). */
export function writtenFromAddresses(view: HeaderView): string[] {
  return view.fields
    .filter((f) => f.name === 'from')
    .flatMap((f) =>
      addressparser(Buffer.from(f.value, 'latin1').toString('utf8'), { flatten: true }),
    )
    .map((a) => a.address.trim())
    .filter((a) => a !== '');
}

/** The addresses of every From field, lower-cased (groups flattened). */
export function fromAddresses(view: HeaderView): string[] {
  return writtenFromAddresses(view).map((a) => a.toLowerCase());
}

/** application/pkcs7-mime with enveloped-data: the client encrypted it; we never read it. */
export function isClientEncrypted(view: HeaderView): boolean {
  const type = field(view, 'content-type');
  if (type === undefined) return false;
  const lower = type.toLowerCase();
  return (
    /^\s*application\/(x-)?pkcs7-mime\b/.test(lower) &&
    /smime-type\s*=\s*"?(auth)?enveloped-data/.test(lower)
  );
}

/**
 * Date and Message-ID prepended when the client left them out (RFC 6409 §8.2, §8.3);
 * the message itself is otherwise unchanged.
 */
export function withSubmissionFixups(
  message: Uint8Array,
  view: HeaderView,
  hostname: string,
  now: Date,
): Uint8Array {
  const added: string[] = [];
  if (field(view, 'date') === undefined) added.push(`Date: ${rfc5322Date(now)}`);
  if (field(view, 'message-id') === undefined)
    added.push(`Message-ID: <${randomUUID()}@${hostname}>`);
  if (added.length === 0) return message;
  return Buffer.concat([Buffer.from(added.join(view.eol) + view.eol, 'latin1'), message]);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC with a numeric zone. */
export function rfc5322Date(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ` +
    `${date.getUTCFullYear()} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:` +
    `${two(date.getUTCSeconds())} +0000`
  );
}
