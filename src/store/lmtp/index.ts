/** LMTP listener of the embedded store; see server.ts. */
export {
  startLmtpServer,
  deliveryReply,
  type LmtpServerHandle,
  type LmtpServerOptions,
  type LmtpLogger,
} from './server.js';
