/**
 * Device login on top of the store (the IMAP proxy's use): which active device of
 * `address` does this password belong to? One scrypt derivation with the account's salt
 * is compared with every active device's hash (no early exit), and an unknown address
 * costs the same derivation, so the time taken does not tell whether the account
 * exists, how many devices it has or which one matched (credentials.ts).
 */
import { WRAP_ENCODING_OF_CLIENT, type DeviceRecryptKeys, type Scalar } from '../recrypt/types.js';
import { matchDeviceCredential } from './credentials.js';
import type { KeyStore } from './keystore.js';
import type { Device } from './types.js';

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
  const { index } = await matchDeviceCredential(
    password,
    address,
    devices.map((d) => d.credentialHash),
  );
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
