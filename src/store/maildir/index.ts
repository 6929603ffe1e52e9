/** Maildir storage for the embedded store; see store.ts and src/store/README.md. */
export { createMaildirStore, DEFAULT_MAILBOXES, type MaildirStoreOptions } from './store.js';
export type { FaultHook, DiskOp } from './disk.js';
export { normalizeMailboxName } from './names.js';
export { encodeModifiedUtf7, decodeModifiedUtf7 } from '../mutf7.js';
