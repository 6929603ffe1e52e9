/**
 * Binds the AppendEncryptor port to the recrypt core: a plaintext message a client files
 * (Sent, Drafts) is wrapped for the user's group certificate; a message that is already
 * S/MIME enveloped data is kept as it is (it is not plaintext).
 */
import { wrapMessage } from '../../recrypt/smime.js';
import type { AppendEncryptor } from '../ports.js';

export const DEFAULT_APPEND_LIMIT = 50 * 1024 * 1024;

export function groupAppendEncryptor(
  groupCertificate: Uint8Array,
  maxBytes = DEFAULT_APPEND_LIMIT,
): AppendEncryptor {
  return {
    maxBytes,
    encrypt(message) {
      if (isEnveloped(message)) return message;
      return Buffer.from(wrapMessage(message, groupCertificate));
    },
  };
}

function isEnveloped(message: Buffer): boolean {
  let end = message.indexOf('\r\n\r\n');
  if (end === -1) end = message.indexOf('\n\n');
  const head = message.toString(
    'latin1',
    0,
    end === -1 ? Math.min(message.length, 64 * 1024) : end,
  );
  const field = /^content-type:[ \t]*((?:.|\r?\n[ \t])*)/im.exec(head);
  if (field === null) return false;
  const value = field[1]!.replace(/\r?\n/g, '').toLowerCase();
  if (!/^application\/(x-)?pkcs7-mime\b/.test(value)) return false;
  const type = /smime-type="?([a-z-]+)/.exec(value);
  return type === null || type[1] === 'enveloped-data' || type[1] === 'authenveloped-data';
}
