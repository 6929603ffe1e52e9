/**
 * What the bridge shows for one message fetched from the gateway (README.md, "Messages"):
 * an S/MIME message recrypted for this device is decrypted to the original message (the
 * MX envelopes it byte for byte, src/recrypt/smime.ts); a message that is not S/MIME is
 * shown as the gateway served it; an S/MIME message this device cannot decrypt becomes a
 * short text/plain placeholder that keeps the outer From/To/Date/Subject/Message-ID and
 * says why, so it is neither dropped nor shown as an unreadable attachment.
 */
import { headerFields, parseMessageStructure } from '../store/mime/index.js';
import { RecryptError, decryptMessage, type DecryptKey } from '../recrypt/index.js';

export type Plaintext =
  | { kind: 'decrypted'; bytes: Uint8Array }
  | { kind: 'not-encrypted'; bytes: Uint8Array }
  | { kind: 'placeholder'; bytes: Uint8Array; reason: string };

const PLACEHOLDER_FIELDS = ['from', 'to', 'cc', 'date', 'subject', 'message-id'];

function isSmime(message: Uint8Array): boolean {
  const { root } = parseMessageStructure(message);
  const type = `${root.contentType.type}/${root.contentType.subtype}`;
  return type === 'application/pkcs7-mime' || type === 'application/x-pkcs7-mime';
}

/** A text/plain message with the encrypted message's outer header fields and the reason. */
export function placeholderMessage(encrypted: Uint8Array, reason: string): Uint8Array {
  const { root } = parseMessageStructure(encrypted);
  const kept = Buffer.from(headerFields(encrypted, root.header, PLACEHOLDER_FIELDS));
  // headerFields ends with the empty line; the placeholder adds its own fields before it.
  const fields = kept.subarray(0, kept.length - 2);
  const text = [
    'This message could not be decrypted by the recrypt bridge on this computer.',
    '',
    `Reason: ${reason}`,
    '',
    'The encrypted original is still in the mailbox on the gateway; a client with',
    "S/MIME and this device's key, or `recrypt read`, may still open it.",
    '',
  ].join('\r\n');
  return Buffer.concat([
    fields,
    Buffer.from(
      'X-Recrypt-Bridge: undecryptable\r\n' +
        'MIME-Version: 1.0\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Transfer-Encoding: 8bit\r\n\r\n' +
        text,
      'utf8',
    ),
  ]);
}

export function toPlaintext(message: Uint8Array, key: DecryptKey): Plaintext {
  if (!isSmime(message)) return { kind: 'not-encrypted', bytes: message };
  try {
    return { kind: 'decrypted', bytes: decryptMessage(message, key) };
  } catch (error) {
    const reason =
      error instanceof RecryptError ? `${error.code}: ${error.message}` : 'unexpected error';
    return { kind: 'placeholder', bytes: placeholderMessage(message, reason), reason };
  }
}
