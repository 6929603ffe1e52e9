/** LMTP listener of the embedded store; see server.ts. */
export {
  startLmtpServer,
  deliveryReply,
  type LmtpServerHandle,
  type LmtpServerOptions,
  type LmtpLogger,
} from './server.js';
export { createLmtpMetrics, type LmtpMetrics, type LmtpDeliveryResult } from './metrics.js';
