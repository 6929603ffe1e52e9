/**
 * MIME structure of stored messages, shared by the maildir index (which caches it) and
 * the IMAP layer (which renders ENVELOPE / BODYSTRUCTURE and resolves BODY[section]).
 * Pure: bytes in, plain JSON-able data out, no I/O. See README.md in this directory.
 */
export type {
  Address,
  BodyPart,
  ByteRange,
  ContentType,
  Disposition,
  EncapsulatedMessage,
  Envelope,
  HeaderParam,
  MessageStructure,
} from './types.js';
export { parseMessageStructure, partByPath, messageAt, buildEnvelope } from './structure.js';
export { headerFields, parseHeaderFields, splitHeader, type HeaderField } from './header.js';
export { parseAddressList } from './address.js';
export { paramValue } from './params.js';
export {
  searchFieldsOf,
  headerOf,
  sentDayOf,
  dayOf,
  ADDRESS_FIELDS,
  MAX_INDEXED_HEADER,
  type SearchFields,
  type SearchField,
  type AddressField,
} from './search-fields.js';
