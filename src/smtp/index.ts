/**
 * src/smtp — the MX (docs/design.md §4, "smtp/"): receives mail for the gateway's users, encrypts
 * it on arrival to each recipient's group and delivers it over LMTP. See README.md.
 * Protocol code reaches the key store, the recryption core and the mail store only
 * through the ports in ports.ts; adapters/ holds the wiring to the real modules.
 */
export { startMxServer, type MxServer, type MxServerOptions } from './mx-server.js';
export { lmtpDelivery, type LmtpTargetOptions } from './lmtp-delivery.js';
export {
  DirectoryUnavailableError,
  type DeliveryResult,
  type DeliveryTarget,
  type DnsResolver,
  type MessageEncryptor,
  type RecipientDirectory,
  type RecipientLookup,
} from './ports.js';
export { SmtpReply } from './reply.js';
export { createMxMetrics, type MxMetrics } from './metrics.js';
