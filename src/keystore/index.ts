/**
 * The key store's public surface: the rest of the gateway imports from here only.
 * See README.md for what this directory owns.
 */
export type { KeyStore } from './keystore.js';
export {
  POSTING_POLICIES,
  type ListGroup,
  type ListMember,
  type ListStore,
  type ListUpdate,
  type MailingList,
  type MemberListKey,
  type NewList,
  type PostingPolicy,
} from './list-types.js';
export {
  MAX_FORMER_GROUPS,
  type GroupRotation,
  type GroupStore,
  type MailboxGroup,
} from './group-rotation.js';
export { type PendingRotation, type RekeyRequest, type RekeyStore } from './rekey.js';
export {
  LimitError,
  type NewPairingRequest,
  type PairingRequest,
  type PairingStore,
} from './pairing.js';
export type {
  Device,
  EnrolmentState,
  KeyStoreConfig,
  KeyStoreEvent,
  KeyStoreListener,
  NewDevice,
  NewUser,
  OwnerCertificates,
  User,
} from './types.js';
export {
  DuplicateError,
  KeyStoreArgumentError,
  KeyStoreError,
  KeyStoreUnavailableError,
  NotFoundError,
  StaleStateError,
  TokenInvalidError,
  type KeyStoreErrorCode,
  type TokenFailure,
} from './errors.js';
export { openKeyStore, type OpenKeyStoreOptions } from './open.js';
export {
  GATEWAY_KEY_FILE,
  GatewayKey,
  loadOrCreateGatewayKey,
  unwrapRecryptionKey,
  wrapRecryptionKey,
  type KeyBinding,
} from './key-wrapping.js';
export {
  accountCredentialSalt,
  DEVICE_CREDENTIAL_PARAMS,
  deviceCredentialUploadProblem,
  hashDeviceCredential,
  isDeviceCredentialHash,
  matchDeviceCredential,
  verifyDeviceCredential,
  type CredentialMatch,
  type CredentialParams,
} from './credentials.js';
export { authenticateDevice, toDeviceRecryptKeys } from './login.js';
export { normaliseAddress } from './validate.js';
export type { RedisTimeouts } from './redis/connect.js';
