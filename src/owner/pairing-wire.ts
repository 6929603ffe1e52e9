/**
 * What both ends of a device pairing agree on (docs/cli.md "Pairing a device"): the
 * invitation the owner hands the new device, and the short code both display.
 *
 * The invitation (`rdi1.…`) carries the gateway's URL and the certificate the owner's
 * CLI trusts for it, the address, the owner's UDF fingerprint and the gateway's sealed
 * one-time invite. The UDF lets the device check that the group key it seals α to is
 * really the owner's (a gateway that swapped in its own key would learn α, and with τ,
 * d⁻¹).
 *
 * The invitation's key makes a request unforgeable: the device MACs its request with it,
 * and the owner's CLI, which derives the same key from the owner CA secret and the
 * invite the request names, approves nothing whose MAC does not verify. Whoever never
 * saw the invitation — the gateway included — cannot make a request the owner accepts.
 *
 * The short code is 8 base32 characters of SHA-256 over the owner's UDF, the device's
 * certificate request (D and its name), the sealed α and the client kind. The device
 * shows it; the owner's CLI computes it from what the gateway relayed and approves only
 * the request whose code the owner typed: a request the gateway (or anyone) made up
 * shows another code.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { lengthPrefixed } from '../admin/remote-join-proof.js';
import { base32Encode, scalarToBytes, type Scalar } from '../recrypt/index.js';
import { OwnerError } from './errors.js';
import { parseGatewayUrl } from './gateway-client.js';

const PREFIX = 'rdi1.';
const CODE_DOMAIN = 'recrypt device pairing code v1';

export interface PairingInvitation {
  /** The gateway's admin API origin. */
  gateway: string;
  /** DER (base64) of the certificate the owner's CLI trusts for it; absent: the system's CAs. */
  ca?: string;
  address: string;
  /** The owner's UDF fingerprint (of the owner CA key). */
  udf: string;
  /** The gateway's sealed invite (single use, expires). */
  invite: string;
  /**
   * The invitation's own key (base64url), derived by the owner's CLI from the owner CA
   * secret and the invite: never sent to the gateway. The device MACs its request with it.
   */
  key: string;
}

export function encodePairingInvitation(invitation: PairingInvitation): string {
  return PREFIX + Buffer.from(JSON.stringify(invitation)).toString('base64url');
}

export function decodePairingInvitation(text: string): PairingInvitation {
  const fail = () => new OwnerError('invalid-argument', 'pairing invitation: malformed');
  const trimmed = text.trim();
  if (!trimmed.startsWith(PREFIX) || trimmed.length > 16_384) throw fail();
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(Buffer.from(trimmed.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw fail();
  }
  if (typeof value !== 'object' || value === null) throw fail();
  for (const field of ['gateway', 'address', 'udf', 'invite', 'key'])
    if (typeof value[field] !== 'string' || (value[field] as string).length > 2048) throw fail();
  if (value.ca !== undefined && (typeof value.ca !== 'string' || value.ca.length > 12_000))
    throw fail();
  parseGatewayUrl(value.gateway as string);
  return value as unknown as PairingInvitation;
}

/** The code both sides display, `XXXX-XXXX` (base32, 40 bits). */
export function pairingShortCode(
  udf: string,
  certificateRequest: Uint8Array,
  sealedAlpha: string,
  client: string,
): string {
  const digest = createHash('sha256')
    .update(
      lengthPrefixed([
        Buffer.from(CODE_DOMAIN),
        Buffer.from(udf),
        certificateRequest,
        Buffer.from(sealedAlpha),
        Buffer.from(client),
      ]),
    )
    .digest();
  const code = base32Encode(digest).slice(0, 8);
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/** A code as the owner typed it, compared without case, dashes or spaces. */
export function sameShortCode(typed: string, code: string): boolean {
  const norm = (text: string) => text.toUpperCase().replace(/[\s-]/g, '');
  return norm(typed) === norm(code);
}

const KEY_DOMAIN = 'recrypt device pairing invitation key v1';
const TAG_DOMAIN = 'recrypt device pairing request v1';

/** The invitation's key: HMAC-SHA-256 under the owner CA secret over the sealed invite. */
export function pairingInvitationKey(ownerCaSecret: Scalar, invite: string): string {
  return createHmac('sha256', Buffer.from(scalarToBytes(ownerCaSecret)))
    .update(lengthPrefixed([Buffer.from(KEY_DOMAIN), Buffer.from(invite)]))
    .digest('base64url');
}

/** The device's MAC over what it asks for, with the invitation's key. */
export function pairingRequestTag(
  key: string,
  fields: {
    address: string;
    name: string;
    client: string;
    certificateRequest: Uint8Array;
    sealedAlpha: string;
  },
): string {
  return createHmac('sha256', Buffer.from(key, 'base64url'))
    .update(
      lengthPrefixed([
        Buffer.from(TAG_DOMAIN),
        Buffer.from(fields.address),
        Buffer.from(fields.name),
        Buffer.from(fields.client),
        fields.certificateRequest,
        Buffer.from(fields.sealedAlpha),
      ]),
    )
    .digest('base64url');
}

/** Constant-time comparison of two tags. */
export function sameTag(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
