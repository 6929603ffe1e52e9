/**
 * The embedded store's IMAP4rev1 server (RFC 3501 + IDLE, UIDPLUS, MOVE, NAMESPACE,
 * LITERAL+, SPECIAL-USE, UNSELECT, ENABLE, ID, SASL-IR), modelled on go-imap v2 and
 * gluon: `commands/` parses (one typed command per rule, ABNF in comments),
 * `handlers/` runs one command each against the MailStore interface of
 * `../backend.ts`, `dispatch.ts` is the one table and the one place errors become
 * replies, `tracker.ts` keeps each session's sequence numbers. See README.md.
 */
export {
  startImapServer,
  DEFAULT_LIMITS,
  type ImapServerOptions,
  type ImapServerHandle,
  type ImapLimits,
} from './server.js';
export { parseCommand } from './commands/parse.js';
export { createStoreImapMetrics, type StoreImapMetrics } from './metrics.js';
export type { Command } from './commands/types.js';
export type { Logger } from './session.js';
export {
  encodeModifiedUtf7 as encodeMailboxName,
  decodeModifiedUtf7 as decodeMailboxName,
} from '../mutf7.js';
