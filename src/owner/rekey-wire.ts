/**
 * What a device and its owner agree on in a full rotation (docs/design.md §6): the MAC a
 * device puts on its re-key request. Its key comes from x(d·C) = x(c·D), the shared
 * point of the device key and the owner CA key, which the device computes with d and the
 * owner with c; the gateway, holding neither, cannot make or alter a request the owner
 * answers (it would learn g′ from β = g′·α for an α of its own choosing).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { lengthPrefixed } from '../admin/remote-join-proof.js';
import { multiplyPoint, type Scalar } from '../recrypt/index.js';

const INFO = 'recrypt device rekey mac v1';

export interface RekeyFields {
  address: string;
  /** The pending group's RecipientId hex. */
  groupId: string;
  /** The device certificate's RecipientId hex. */
  deviceId: string;
  sealedAlpha: string;
}

/** The MAC, from either side: `point` is C with the device's d, or D with the owner's c. */
export function rekeyMac(point: Uint8Array, secret: Scalar, fields: RekeyFields): string {
  const shared = multiplyPoint(point, secret).subarray(1, 33);
  const key = Buffer.from(
    hkdfSync('sha256', shared, Buffer.from(fields.address, 'utf8'), INFO, 32),
  );
  const text = lengthPrefixed(
    [fields.address, fields.groupId, fields.deviceId, fields.sealedAlpha].map((f) =>
      Buffer.from(f, 'utf8'),
    ),
  );
  return createHmac('sha256', key).update(text).digest('base64url');
}

export function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
