/**
 * RFC 5322 message ⇄ S/MIME message for the MX.
 *
 * The encrypted content is the original message, byte for byte (every header, every body
 * byte, its own line endings): RFC 9788-style header protection where the inner message
 * carries all original headers, so `openssl cms -decrypt` yields exactly what arrived.
 * The outer message repeats what a client needs to list and thread mail (From, To, Cc,
 * Date, Subject, Message-ID, In-Reply-To, References), each field copied byte-exact,
 * folding included; only line terminators are normalized to CRLF, since the outer
 * message is CRLF throughout. With `hideSubject` the outer Subject is RFC 9788's "[...]".
 *
 * Edge cases, decided: a message without an empty line is all header (body empty); a
 * message that starts with an empty line has no header to copy; a 0-byte message is
 * enveloped as it is (empty content, no copied headers) — lossless beats refusing, and
 * the MX decides separately whether it accepts such mail.
 */
import { RecryptError } from './errors.js';
import { Base64LineStream, Base64LineWriter, base64LinesLength } from './base64-lines.js';
import { prepareEnvelope, type ContentEncryption } from './envelope.js';
import { bytesEqual } from './der.js';
import { decodeBase64Prefix } from './transform-base64.js';
import { findHeaderEnd, locateSmimeBody, parseHeaderFields } from './transform-message.js';
import { MAX_CMS_PREFIX, parseEnvelopePrefix } from './transform-prefix.js';
import type { RecipientId } from './types.js';

/** Header fields the outer message keeps, in the original's order. */
export const OUTER_HEADER_FIELDS: readonly string[] = [
  'from',
  'to',
  'cc',
  'date',
  'subject',
  'message-id',
  'in-reply-to',
  'references',
];

export interface WrapOptions {
  /** Replace the outer Subject with "[...]" (RFC 9788 §4.2 "header confidentiality"). */
  hideSubject?: boolean;
  contentEncryption?: ContentEncryption;
}

const CRLF = Buffer.from('\r\n', 'latin1');

/** A header field's bytes with every line terminator (LF or CRLF) written as CRLF. */
export function withCrlf(field: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < field.length; i++) {
    if (field[i] !== 0x0a) continue;
    const lineEnd = i > start && field[i - 1] === 0x0d ? i - 1 : i;
    parts.push(Buffer.from(field.subarray(start, lineEnd)), CRLF);
    start = i + 1;
  }
  if (start < field.length) parts.push(Buffer.from(field.subarray(start)), CRLF);
  return Buffer.concat(parts);
}

/** Base64 of `der` in 76-character lines, each ending in CRLF. */
export function base64Lines(der: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(base64LinesLength(der.length));
  const writer = new Base64LineWriter(out, 0);
  writer.write(der);
  writer.end();
  return out;
}

/** The MIME fields that announce an S/MIME envelope in base64 (wrapMessage, remote.ts). */
export function smimeBodyFields(authenticated: boolean): string {
  return (
    `Content-Type: application/pkcs7-mime; smime-type=${authenticated ? 'authEnveloped-data' : 'enveloped-data'};\r\n` +
    ' name="smime.p7m"\r\n' +
    'Content-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename="smime.p7m"\r\n'
  );
}

/** The outer header fields of `original`, CRLF-terminated, Subject hidden if asked. */
function outerHeaders(original: Uint8Array, hideSubject: boolean): Buffer[] {
  const bounds = findHeaderEnd(original);
  // No empty line: the whole message is header.
  const headerEnd = bounds === null ? original.length : bounds.headerEnd;
  const out: Buffer[] = [];
  for (const field of parseHeaderFields(original, headerEnd)) {
    if (!OUTER_HEADER_FIELDS.includes(field.name)) continue;
    if (field.name === 'subject' && hideSubject)
      out.push(Buffer.from('Subject: [...]\r\n', 'latin1'));
    else out.push(withCrlf(original.subarray(field.start, field.end)));
  }
  return out;
}

/** The outer header section of the S/MIME message for `original`, up to the empty line. */
function smimeHead(original: Uint8Array, options: WrapOptions): Buffer {
  return Buffer.concat([
    ...outerHeaders(original, options.hideSubject === true),
    Buffer.from(
      'MIME-Version: 1.0\r\n' +
        smimeBodyFields(options.contentEncryption === 'aes-256-gcm') +
        '\r\n',
      'latin1',
    ),
  ]);
}

function envelopeOf(original: Uint8Array, groupCertificate: Uint8Array, options: WrapOptions) {
  if (!(original instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'original must be a Uint8Array');
  return prepareEnvelope(
    original,
    groupCertificate,
    options.contentEncryption === undefined ? {} : { contentEncryption: options.contentEncryption },
  );
}

/**
 * Encrypts the complete message `original` to the group certificate and returns the
 * S/MIME message (application/pkcs7-mime, base64 in 76-character CRLF lines).
 */
export function wrapMessage(
  original: Uint8Array,
  groupCertificate: Uint8Array,
  options: WrapOptions = {},
): Uint8Array {
  const envelope = envelopeOf(original, groupCertificate, options);
  const head = smimeHead(original, options);
  // One output buffer, encrypted and base64-encoded into chunk by chunk: the message is
  // held once by the caller and once here, encrypted, and nowhere else at full size.
  const out = new Uint8Array(head.length + base64LinesLength(envelope.length));
  out.set(head, 0);
  const lines = new Base64LineWriter(out, head.length);
  envelope.write((chunk) => lines.write(chunk));
  lines.end();
  return out;
}

/** wrapMessage's output, made while it is consumed (see `streamMessage`). */
export interface SmimeStream {
  /** Length of the whole S/MIME message, known before anything is encrypted. */
  readonly byteLength: number;
  /** The outer header section, up to and including the empty line. */
  readonly head: Uint8Array;
  /**
   * The base64 body (76-character CRLF lines) in pieces, each from at most
   * `encryptChunk` bytes of content encrypted on that step. Call once.
   */
  body(encryptChunk?: number): Generator<Uint8Array, void, undefined>;
}

/**
 * The same message as wrapMessage, byte for byte in meaning (a fresh content key and
 * ephemeral keys each time), encrypted and encoded piece by piece as the caller pulls:
 * a sender that writes each piece to a socket and waits for it to drain holds the
 * message once (the caller's plaintext) plus a piece, and its event loop runs between
 * pieces. The certificate is read, and the keys made, before this returns (a bad
 * certificate throws here, before anything is sent).
 */
export function streamMessage(
  original: Uint8Array,
  groupCertificate: Uint8Array,
  options: WrapOptions = {},
): SmimeStream {
  const envelope = envelopeOf(original, groupCertificate, options);
  const head = smimeHead(original, options);
  return {
    byteLength: head.length + base64LinesLength(envelope.length),
    head,
    *body(encryptChunk) {
      const lines = new Base64LineStream();
      for (const chunk of envelope.chunks(encryptChunk)) {
        const encoded = lines.push(chunk);
        if (encoded.length > 0) yield encoded;
      }
      const last = lines.end();
      if (last.length > 0) yield last;
    },
  };
}

/**
 * True when `message` is an S/MIME envelope with a KeyAgreeRecipientInfo naming
 * `groupRecipientId` (the MX stores such mail as it is). Also accepts bare DER.
 * Never throws on bad input.
 */
export function isEnvelopeForGroup(message: Uint8Array, groupRecipientId: RecipientId): boolean {
  if (!(message instanceof Uint8Array) || !(groupRecipientId instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', 'message and groupRecipientId must be Uint8Arrays');
  }
  let der: Uint8Array;
  const body = locateSmimeBody(message);
  if (body.kind === 'body') {
    der =
      body.encoding === 'binary'
        ? message.subarray(body.bodyStart)
        : decodeBase64Prefix(message, body.bodyStart, MAX_CMS_PREFIX + 3).der;
  } else if (message[0] === 0x30) {
    der = message;
  } else {
    return false;
  }
  try {
    const prefix = parseEnvelopePrefix(der);
    return prefix.karis.some((kari) =>
      kari.recipients.some((r) => bytesEqual(r.rid, groupRecipientId)),
    );
  } catch (error) {
    if (error instanceof RecryptError) return false;
    throw error;
  }
}
