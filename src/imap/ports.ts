/**
 * The narrow interfaces the proxy depends on (protocol code never imports storage
 * or crypto internals). Adapters in `adapters/` bind them to the key store and the
 * recrypt core; tests may bind them to in-memory data.
 */
import type { DeviceRecryptKeys } from '../recrypt/types.js';

/** A device that proved its credential. */
export interface AuthenticatedDevice {
  /** The user's address: the upstream login's authorization identity. */
  address: string;
  /** Stable identifier of the device (for revocation and logs; not secret). */
  deviceId: string;
  keys: DeviceRecryptKeys;
  /** DER of the user's group certificate (APPEND encryption). */
  groupCertificate?: Uint8Array;
  /** Set when the device opened a list's archive instead of its owner's mailbox. */
  archive?: ListArchive;
}

export interface ListArchive {
  /** The list's address (normalised). */
  list: string;
  /** The archive's store user: the upstream login's authorization identity. */
  mailbox: string;
}

export interface DeviceRevokedEvent {
  address: string;
  /** null: every device of the address (the user was removed). */
  deviceId: string | null;
}

export interface DeviceDirectory {
  /**
   * Checks a device credential. Resolves null for an unknown address and for a wrong
   * password alike (the caller answers both the same way); throws UnavailableError when
   * the key store cannot answer. Comparison of password hashes is constant-time.
   */
  authenticate(address: string, password: string): Promise<AuthenticatedDevice | null>;
  /**
   * A member's device opening a list's archive: the device credential is checked as by
   * `authenticate`, then that its owner is a current member of `list`. Resolves null for
   * every failure alike (wrong password, no such list, not a member). `address` and
   * `deviceId` are the member's device (revocation ends the session); `keys` hold only
   * the composed keys for the list's groups, current and former.
   */
  authenticateArchive?(
    list: string,
    member: string,
    password: string,
  ): Promise<AuthenticatedDevice | null>;
  /**
   * The account a login name counts against (throttling, per-user limits): the directory's
   * own normalisation, so that names it treats as one account share one counter.
   * Undefined: trimmed and lower-cased.
   */
  accountOf?(name: string): string;
  /**
   * Whether `device` may still log in, read after its session was registered for
   * revocations: a revocation that completed during the credential check shows here,
   * one that completes later reaches the registered session. Undefined: always true.
   */
  stillActive?(device: AuthenticatedDevice): Promise<boolean>;
  /** Subscribes to revocations; returns the unsubscribe function. */
  onDeviceRevoked(listener: (event: DeviceRevokedEvent) => void): () => void;
}

/** How a body literal is encoded, decided by the FETCH section it answers. */
export type BodyForm = 'der' | 'base64' | 'message';

export interface BodyEdit {
  /** Offset from the start of the section's content. */
  offset: number;
  bytes: Uint8Array;
}

export type BodyPlan =
  | {
      kind: 'edits';
      edits: readonly BodyEdit[];
      /**
       * Made at delivery and kept there (delivered-plans.ts), where a fetch of the same
       * body finds it again: the point cache keeps it in memory only, not in its table.
       */
      delivered?: true;
    }
  | { kind: 'unchanged'; reason: string }
  | { kind: 'need-more'; atLeast: number };

/** The recrypt transform bound to one device's keys. Pure and synchronous. */
export interface BodyTransform {
  plan(prefix: Uint8Array, form: BodyForm): BodyPlan;
  /**
   * A plan known without parsing or multiplying (made at delivery), or undefined; `plan`
   * finds it too. Lets a body literal try it before a file read of the point cache.
   */
  known?(prefix: Uint8Array, form: BodyForm): BodyPlan | undefined;
  /** Returns `chunk` (same length) with the edits that fall inside [offset, offset+len) applied. */
  apply(chunk: Uint8Array, chunkOffset: number, edits: readonly BodyEdit[]): Uint8Array;
}

/** Turns a message a client APPENDs into what the store keeps (encrypted to the user's group). */
export interface AppendEncryptor {
  /** Larger APPENDs are refused rather than stored in plaintext. */
  maxBytes: number;
  /** The bytes to store; an already encrypted message comes back as it is. */
  encrypt(message: Buffer): Buffer;
  /**
   * Reserves memory for a literal of `bytes` before it is read (false: refuse it now);
   * every reservation is given back with `release` once its bytes went upstream or were
   * dropped. Absent: no budget.
   */
  reserve?(bytes: number): boolean;
  release?(bytes: number): void;
}
