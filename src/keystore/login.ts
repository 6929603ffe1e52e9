/**
 * Device login on top of the store (the IMAP proxy's use): which active device of
 * `address` does this password belong to? Every active device's hash is checked (no
 * early exit) and an unknown address costs one hash too, so the time taken does not
 * tell whether the account exists or which device matched.
 */
import { WRAP_ENCODING_OF_CLIENT, type DeviceRecryptKeys, type Scalar } from '../recrypt/types.js';
import { hashDeviceCredential, verifyDeviceCredential } from './credentials.js';
import type { KeyStore } from './keystore.js';
import type { Device } from './types.js';

let dummyHash: Promise<string> | null = null;

export async function authenticateDevice(
  store: KeyStore,
  address: string,
  password: string,
): Promise<Device | null> {
  let devices: Device[];
  try {
    devices = await store.listActiveDevices(address);
  } catch (err) {
    // A malformed address is just a failed login; unavailability must reach the caller.
    if ((err as { code?: string }).code === 'invalid-argument') devices = [];
    else throw err;
  }
  if (devices.length === 0) {
    dummyHash ??= hashDeviceCredential('recrypt-dummy-password');
    await verifyDeviceCredential(password, await dummyHash);
    return null;
  }
  const results = await Promise.all(
    devices.map((d) => verifyDeviceCredential(password, d.credentialHash)),
  );
  const index = results.indexOf(true);
  return index === -1 ? null : devices[index]!;
}

/** The transform's view of a device: its RecipientId bytes, its client's encoding and its keys. */
export function toDeviceRecryptKeys(
  device: Device,
  keys: ReadonlyMap<string, Scalar>,
): DeviceRecryptKeys {
  return {
    deviceId: new Uint8Array(Buffer.from(device.deviceId, 'hex')),
    wrapEncoding: WRAP_ENCODING_OF_CLIENT[device.client],
    keys,
  };
}
