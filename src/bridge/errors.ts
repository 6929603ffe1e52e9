/**
 * The bridge's one error type: every failure a person can meet (wrong cache passphrase,
 * no account yet, gateway unreachable or refusing the device login) becomes a one-line
 * message fit to print; it never carries a secret.
 */
import { StoreError } from '../store/backend.js';
import { ImapError } from '../store/imap/errors.js';

export type BridgeErrorCode =
  | 'bad-passphrase'
  | 'corrupt-cache'
  | 'no-account'
  | 'invalid-argument'
  | 'upstream'
  /** Another bridge uses the data directory (data-dir-lock.ts). */
  | 'in-use'
  /** The gateway refuses the device's login: revoked, or its password changed (docs/bridge.md). */
  | 'refused';

export class BridgeError extends Error {
  override readonly name = 'BridgeError';
  constructor(
    readonly code: BridgeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A failure on the gateway side, as the IMAP layer can answer it: NO [UNAVAILABLE] with
 * the advice when the gateway refuses the device, else NO [SERVERBUG] (the detail is logged).
 */
export async function onGateway<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof StoreError) throw error;
    // The client is told what to do (docs/bridge.md, "When the gateway refuses the device").
    if (error instanceof BridgeError && error.code === 'refused')
      throw new ImapError('NO', error.message, 'UNAVAILABLE');
    throw new StoreError('io-error', `gateway: ${(error as Error).message}`);
  }
}
