/** The recrypting IMAP proxy's public surface (see README.md). */
export { startImapProxy, type ImapProxy, type ImapProxyOptions } from './server.js';
export type {
  AuthenticatedDevice,
  BodyTransform,
  DeviceDirectory,
  DeviceRevokedEvent,
} from './ports.js';
export { ImapProxyError, UnavailableError } from './errors.js';
export { createImapProxyMetrics, type ImapProxyMetrics } from './metrics.js';
export { recryptTransform } from './adapters/recrypt-transform.js';
export { keyStoreDirectory } from './adapters/keystore-directory.js';
export { groupAppendEncryptor, DEFAULT_APPEND_LIMIT } from './adapters/append-encryption.js';
export type { AppendEncryptor } from './ports.js';
