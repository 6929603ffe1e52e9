/**
 * MessageEncryptor over the recryption core: `wrapMessage` (CMS EnvelopedData to the group
 * certificate, ECDH P-256, as S/MIME), `streamMessage` (the same, encrypted while it is
 * sent) and `isEnvelopeForGroup` with the certificate's RecipientId. The only file of the
 * MX that imports src/recrypt.
 */
import { createHash } from 'node:crypto';
import {
  isEnvelopeForGroup,
  recipientIdOf,
  streamMessage,
  wrapMessage,
  type RecipientId,
  type WrapOptions,
} from '../../recrypt/index.js';
import type { MessageEncryptor } from '../ports.js';

export interface RecryptEncryptorOptions {
  /** Outer Subject "[...]" (config `smtp.hideSubject`). */
  hideSubject?: boolean;
  contentEncryption?: WrapOptions['contentEncryption'];
}

export function recryptEncryptor(options: RecryptEncryptorOptions = {}): MessageEncryptor {
  const wrapOptions: WrapOptions = {
    hideSubject: options.hideSubject === true,
    ...(options.contentEncryption !== undefined
      ? { contentEncryption: options.contentEncryption }
      : {}),
  };
  // Recipients arrive with the same few certificates over and over: parse each once.
  const ids = new Map<string, RecipientId>();
  const recipientId = (certificate: Uint8Array): RecipientId => {
    const key = createHash('sha256').update(certificate).digest('hex');
    let id = ids.get(key);
    if (id === undefined) {
      id = recipientIdOf(certificate);
      if (ids.size > 10_000) ids.clear();
      ids.set(key, id);
    }
    return id;
  };
  return {
    encryptForGroup: (message, groupCertificate) =>
      wrapMessage(message, groupCertificate, wrapOptions),
    streamForGroup: (message, groupCertificate) =>
      streamMessage(message, groupCertificate, wrapOptions),
    isAlreadyForGroup: (message, groupCertificate) =>
      isEnvelopeForGroup(message, recipientId(groupCertificate)),
  };
}
