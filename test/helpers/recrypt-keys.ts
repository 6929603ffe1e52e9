/** DeviceRecryptKeys for tests, from parties that hold their secrets (never the gateway's view). */
import { recryptionKey } from '../../src/recrypt/scalar.js';
import type {
  DeviceRecryptKeys,
  RecipientId,
  Scalar,
  WrapEncoding,
} from '../../src/recrypt/types.js';

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function deviceKeys(
  group: { secret: Scalar; recipientId: RecipientId },
  device: { secret: Scalar; recipientId: RecipientId },
  wrapEncoding: WrapEncoding = 'absent',
): DeviceRecryptKeys {
  return {
    deviceId: device.recipientId,
    wrapEncoding,
    keys: new Map([[hex(group.recipientId), recryptionKey(group.secret, device.secret)]]),
  };
}
