/**
 * Finds the S/MIME signature of a received message, if it has one at the top level
 * (RFC 8551 §3.5): multipart/signed with an application/pkcs7-signature part (the first
 * part is the signed content, canonicalised to CRLF line ends), or application/pkcs7-mime
 * with smime-type=signed-data (the content inside the CMS). Everything is bounded: the
 * message, the signature and the number of parts looked at. Nothing is kept: the caller
 * verifies at once and drops the bytes.
 */
import { fromAddresses, readHeader, type HeaderView } from '../submission/message.js';

export type SignedMessage =
  | { kind: 'detached'; from: string[]; content: Uint8Array; signature: Uint8Array }
  | { kind: 'opaque'; from: string[]; signature: Uint8Array };

export interface SignatureLimits {
  /** A larger message is not looked at. */
  maxMessageBytes: number;
  /** A larger CMS signature (decoded) is not looked at. */
  maxSignatureBytes: number;
}

function contentType(view: HeaderView): string | undefined {
  return view.fields.find((f) => f.name === 'content-type')?.value;
}

function parameter(value: string, name: string): string | undefined {
  const match = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^\\s;]+))`, 'i').exec(value);
  return match === null ? undefined : (match[1] ?? match[2]);
}

function decodeBase64(text: string, max: number): Uint8Array | null {
  // Base64 with line breaks is under twice the size: a longer text cannot fit the cap.
  if (text.length > max * 2) return null;
  if (!/^[A-Za-z0-9+/=\s]*$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === 0 || bytes.length > max ? null : new Uint8Array(bytes);
}

/** The bodies between the first three delimiter lines of `boundary`, or null. */
function firstTwoParts(body: string, boundary: string): [string, string] | null {
  const delimiter = `--${boundary}`;
  const starts: number[] = [];
  let from = 0;
  while (starts.length < 3) {
    const at = body.indexOf(delimiter, from);
    if (at === -1) return null;
    if (at === 0 || body[at - 1] === '\n') starts.push(at);
    from = at + delimiter.length;
  }
  const part = (index: number): string | null => {
    const lineEnd = body.indexOf('\n', starts[index]!);
    if (lineEnd === -1 || lineEnd > starts[index + 1]!) return null;
    let end = starts[index + 1]! - 1; // the LF before the next delimiter belongs to it
    if (body[end - 1] === '\r') end -= 1;
    return body.slice(lineEnd + 1, Math.max(lineEnd + 1, end));
  };
  const first = part(0);
  const second = part(1);
  return first === null || second === null ? null : [first, second];
}

/** A top-level Content-Type of a signed message (the header alone is read): worth a look. */
export function looksSigned(message: Uint8Array, limits: SignatureLimits): boolean {
  if (message.byteLength > limits.maxMessageBytes) return false;
  const type = contentType(readHeader(message))?.trim().toLowerCase();
  return (
    type !== undefined &&
    (/^multipart\/signed\b/.test(type) ||
      (/^application\/(x-)?pkcs7-mime\b/.test(type) && /signed-data/.test(type)))
  );
}

/** The message's S/MIME signature, or null when it has none (or one past the limits). */
export function findSignature(message: Uint8Array, limits: SignatureLimits): SignedMessage | null {
  if (message.byteLength > limits.maxMessageBytes) return null;
  const view = readHeader(message);
  const type = contentType(view);
  if (type === undefined) return null;
  const lower = type.trim().toLowerCase();
  const from = fromAddresses(view);
  const body = Buffer.from(
    message.buffer,
    message.byteOffset + view.bodyStart,
    message.byteLength - view.bodyStart,
  ).toString('latin1');
  if (/^multipart\/signed\b/.test(lower)) {
    const protocol = parameter(type, 'protocol')?.toLowerCase();
    if (protocol !== 'application/pkcs7-signature' && protocol !== 'application/x-pkcs7-signature')
      return null;
    const boundary = parameter(type, 'boundary');
    if (boundary === undefined || boundary.length === 0 || boundary.length > 200) return null;
    const parts = firstTwoParts(body, boundary);
    if (parts === null) return null;
    const [content, signaturePart] = parts;
    const blank = /\r?\n\r?\n/.exec(signaturePart);
    if (blank === null) return null;
    const signature = decodeBase64(
      signaturePart.slice(blank.index + blank[0].length),
      limits.maxSignatureBytes,
    );
    if (signature === null) return null;
    // RFC 8551 §3.1.1: the signature covers the canonical (CRLF) form of the first part.
    const canonical = Buffer.from(content.replace(/\r?\n/g, '\r\n'), 'latin1');
    return { kind: 'detached', from, content: new Uint8Array(canonical), signature };
  }
  if (
    /^application\/(x-)?pkcs7-mime\b/.test(lower) &&
    parameter(type, 'smime-type')?.toLowerCase() === 'signed-data'
  ) {
    // The content is inside: bounded by the message's cap, not the signature's.
    const signature = decodeBase64(body, limits.maxMessageBytes);
    return signature === null ? null : { kind: 'opaque', from, signature };
  }
  return null;
}
