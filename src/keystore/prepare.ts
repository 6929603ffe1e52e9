/**
 * Input checks and record assembly shared by the adapters, so both accept, refuse and
 * return exactly the same things; the adapters only store.
 */
import type { Scalar } from '../recrypt/types.js';
import { isDeviceCredentialHash } from './credentials.js';
import { KeyStoreArgumentError } from './errors.js';
import { type GatewayKey, wrapRecryptionKey } from './key-wrapping.js';
import { newRecordId } from './tokens.js';
import type { Device, NewDevice, OwnerCertificates } from './types.js';
import {
  checkClient,
  checkDer,
  checkDeviceName,
  checkRecipientIdHex,
  checkScalar,
  normaliseAddress,
} from './validate.js';

export interface PreparedDevice {
  device: Device;
  /** groupId → wrapped rk, bound to (groupId, device.deviceId). */
  wrappedKeys: Map<string, Buffer>;
}

export function prepareDevice(
  input: NewDevice,
  gatewayKey: GatewayKey,
  now: number,
): PreparedDevice {
  const ownerAddress = normaliseAddress(input.ownerAddress);
  const deviceId = checkRecipientIdHex(input.deviceId, 'deviceId');
  if (typeof input.credentialHash !== 'string' || !isDeviceCredentialHash(input.credentialHash)) {
    throw new KeyStoreArgumentError('credentialHash must come from hashDeviceCredential');
  }
  if (!(input.keys instanceof Map) || input.keys.size === 0 || input.keys.size > 64) {
    throw new KeyStoreArgumentError('a device needs 1 to 64 recryption keys');
  }
  const wrappedKeys = new Map<string, Buffer>();
  for (const [groupId, rk] of input.keys) {
    wrappedKeys.set(
      checkRecipientIdHex(groupId, 'groupId'),
      wrapRecryptionKey(gatewayKey, checkScalar(rk), { groupId, targetId: deviceId }),
    );
  }
  const device: Device = {
    id: newRecordId(),
    ownerAddress,
    name: checkDeviceName(input.name),
    certificate: new Uint8Array(checkDer(input.certificate, 'certificate')),
    deviceId,
    client: checkClient(input.client),
    credentialHash: input.credentialHash,
    created: now,
    lastSeen: null,
    revoked: null,
  };
  return { device, wrappedKeys };
}

export function checkOwnerCertificates(owner: OwnerCertificates): OwnerCertificates {
  if (typeof owner !== 'object' || owner === null)
    throw new KeyStoreArgumentError('owner certificates missing');
  return {
    ownerCaCertificate: new Uint8Array(checkDer(owner.ownerCaCertificate, 'ownerCaCertificate')),
    groupCertificate: new Uint8Array(checkDer(owner.groupCertificate, 'groupCertificate')),
    groupId: checkRecipientIdHex(owner.groupId, 'groupId'),
    ownerKeySpki: new Uint8Array(checkDer(owner.ownerKeySpki, 'ownerKeySpki')),
  };
}

export function wrapOne(
  gatewayKey: GatewayKey,
  groupId: string,
  deviceId: string,
  rk: Scalar,
): Buffer {
  checkRecipientIdHex(groupId, 'groupId');
  return wrapRecryptionKey(gatewayKey, checkScalar(rk), { groupId, targetId: deviceId });
}

export function isRecordId(id: string): boolean {
  return typeof id === 'string' && /^[0-9a-f]{16}$/.test(id);
}

export function checkRecordId(id: string): string {
  if (typeof id !== 'string' || !/^[0-9a-f]{16}$/.test(id))
    throw new KeyStoreArgumentError('device id must be 16 hex digits');
  return id;
}
