/**
 * The recrypt core's public surface (see README.md here and docs/design.md §2). Every other part
 * of the gateway reaches cryptography only through this file.
 */
export * from './errors.js';
export * from './types.js';
export * from './scalar.js';
export * from './blinded.js';
export { buildDeviceRequest, readDeviceRequest, type DeviceRequest } from './device-request.js';
export * from './udf.js';
export * from './certificates.js';
export * from './pkcs12.js';
export {
  DerTruncatedError,
  MAX_DER_DEPTH,
  readTlv,
  readChildren,
  checkTree,
  type Tlv,
  type ReadOptions,
} from './der.js';
export {
  envelopeForGroup,
  readRecipientCertificate,
  certificateDer,
  eccCmsSharedInfo,
  wrapAlgorithmIdentifier,
  type ContentEncryption,
  type EnvelopeOptions,
  type RecipientCertificate,
} from './envelope.js';
export {
  keyTransRecipientInfo,
  issuerAndSerialNumber,
  type KeyTransportRecipient,
  type RsaKeyTransportScheme,
} from './key-transport.js';
export {
  wrapMessage,
  streamMessage,
  isEnvelopeForGroup,
  OUTER_HEADER_FIELDS,
  type SmimeStream,
  type WrapOptions,
} from './smime.js';
export {
  planRecrypt,
  applyEdits,
  recryptDer,
  recryptBase64,
  recryptMessage,
  recryptRange,
  checkDeviceKeys,
  type Edit,
  type RecryptForm,
  type RecryptPlan,
  type UnchangedReason,
} from './transform.js';
export {
  MAX_CMS_PREFIX,
  OID,
  parseEnvelopePrefix,
  type EnvelopePrefix,
  type KariInfo,
  type KariRecipient,
} from './transform-prefix.js';
export { MAX_HEADER_BYTES } from './transform-message.js';
export { decryptEnvelope, decryptMessage, type DecryptKey } from './decrypt.js';
export { recryptForCertificate, remoteRecipientId } from './remote.js';
