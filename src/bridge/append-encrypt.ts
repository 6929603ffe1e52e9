/**
 * APPEND (Sent, Drafts) encrypted by the bridge before upload (docs/bridge.md, threat
 * model): the message is enveloped to the user's current group certificate
 * (group-certificate.ts) with the very code the gateway's proxy uses for any client's
 * APPEND (`groupAppendEncryptor`: `wrapMessage` of src/recrypt, ECDH P-256
 * KeyAgreeRecipientInfo, the original message byte for byte inside). The proxy then finds
 * an envelope and stores it as it is, so the gateway never sees the draft's plaintext. A
 * message that is already S/MIME enveloped data goes up unchanged, as the proxy would
 * keep it. The local view caches the plaintext (local-store.ts).
 */
import { createHash } from 'node:crypto';
import { DEFAULT_APPEND_LIMIT, groupAppendEncryptor } from '../imap/adapters/append-encryption.js';
import { recipientIdOf } from '../recrypt/index.js';
import { StoreError } from '../store/backend.js';
import type { GroupCertificateSource } from './group-certificate.js';

export interface AppendEncryptLogger {
  info(details: object, message: string): void;
}

export class AppendEncryption {
  constructor(
    private readonly source: GroupCertificateSource,
    private readonly logger?: AppendEncryptLogger,
    /** The proxy refuses larger APPENDs (src/imap); refusing here says so before any upload. */
    private readonly maxBytes = DEFAULT_APPEND_LIMIT,
  ) {}

  /** The bytes to upload for `message`; throws StoreError (NO to the client) when it cannot encrypt. */
  async encrypt(mailbox: string, message: Uint8Array): Promise<Buffer> {
    if (message.length > this.maxBytes)
      throw new StoreError('too-large', `APPEND larger than ${this.maxBytes} bytes`);
    let certificate: Uint8Array;
    try {
      certificate = await this.source.current();
    } catch (error) {
      // Never upload the plaintext instead: whoever blocks the profile would read the draft.
      throw new StoreError('io-error', (error as Error).message);
    }
    const stored = groupAppendEncryptor(certificate, this.maxBytes).encrypt(Buffer.from(message));
    // Only public values: the group's recipient id, and a digest of the ciphertext that
    // tells this upload apart from one the proxy encrypted (test/bridge/append-*.test.ts).
    this.logger?.info(
      {
        mailbox,
        group: Buffer.from(recipientIdOf(certificate)).toString('hex'),
        bytes: stored.length,
        sha256: createHash('sha256').update(stored).digest('hex'),
      },
      'bridge: APPEND encrypted to the group',
    );
    return stored;
  }
}
