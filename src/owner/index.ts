/**
 * src/owner — the owner's side of the gateway, run on the owner's own machine: the
 * passphrase-encrypted owner key file (the only place the owner CA secret and the group
 * secret g exist), enrolment, devices in and out (device key d, certificate, .p12 and
 * rk = g·d⁻¹ are made here; only certificate, rk and a password hash are uploaded),
 * publishing the signed mail profile and its sending policy (policy.ts), profile and
 * SMIMEA look-ups, and reading a message with a device key; device pairing, where a new
 * device makes its own d (pairing-device.ts) and the owner approves it by a short code
 * (pairing-owner.ts); mailbox key rotation (rotation.ts, rotation-full.ts) and a
 * device's re-key for it (rekey-device.ts).
 * Also the admin API client the operator's commands share.
 * The CLI (src/cli) only parses arguments and calls these.
 */
export { OwnerError, type OwnerErrorCode } from './errors.js';
export { checkAddress, generatePassword, type ImapSettings } from './common.js';
export {
  callGateway,
  parseGatewayUrl,
  sendRaw,
  type GatewayAuth,
  type GatewayClientOptions,
  type GatewayReply,
} from './gateway-client.js';
export {
  KEY_FILE_FORMAT,
  decodeOwnerKeyFile,
  encodeOwnerKeyFile,
  readOwnerKeyFile,
  readOwnerPublicInfo,
  type OwnerKey,
  type OwnerPublicInfo,
  type OwnerSecrets,
} from './key-file.js';
export { ownerInit, type OwnerInitOptions, type OwnerInitResult } from './enrol.js';
export { repointGateway, type RepointOptions, type RepointResult } from './gateway-repoint.js';
export {
  addDevice,
  checkDeviceName,
  listDevices,
  revokeDevice,
  type AddDeviceOptions,
  type AddedDevice,
  type DeviceView,
} from './devices.js';
export { publishProfile, showProfile, smimeaFor, type PublicLookup } from './profile.js';
export {
  DEFAULT_POLICY,
  SETTABLE_POLICIES,
  policyToPublish,
  publishedPolicy,
  type SendingPolicy,
  type SettablePolicy,
} from './policy.js';
export { readMessage } from './read.js';
export { commitTemp, discardTemp, writeTemp } from './files.js';
export {
  checkPairing,
  startPairing,
  waitForPairing,
  writePairedDevice,
  type ApprovedDevicePairing,
  type PairedDeviceFiles,
  type PendingDevicePairing,
} from './pairing-device.js';
export {
  approvePairing,
  createPairingInvitation,
  listPendingPairings,
  refusePairing,
  type PendingPairing,
} from './pairing-owner.js';
export { pairingShortCode, type PairingInvitation } from './pairing-wire.js';
export {
  pendingKeyFile,
  rotateMailbox,
  type RotateOptions,
  type RotateResult,
} from './rotation.js';
export { cancelFullRotation, continueFullRotation, type ContinueResult } from './rotation-full.js';
export { rekeyDevice, type RekeyOptions, type RekeyResult } from './rekey-device.js';
