/**
 * A list's control addresses, after Mailman's convention that list operators know:
 * `team-owner@` (the list owner), `team-bounces@` (the return path of every copy the
 * list sends, so delivery failures reach the owner), `team-unsubscribe@` and its
 * synonym `team-leave@` (start leaving), and `team-confirm+<token>@` (finish leaving).
 *
 * The token binds list, member and expiry under a gateway secret: stateless, so nothing
 * is stored for a pending request, and a forged envelope sender alone cannot make anyone
 * leave (the confirmation goes to the member's own mailbox). It is lower-case base32,
 * because mail clients and MTAs may fold the case of a local part. Pure: no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type ControlAction = 'owner' | 'bounces' | 'unsubscribe' | 'confirm';

export interface ControlAddress {
  /** The list address the control address belongs to. */
  list: string;
  action: ControlAction;
  /** The confirmation token (`confirm` only). */
  token?: string;
}

const SUFFIXES: ReadonlyArray<[string, ControlAction]> = [
  ['-owner', 'owner'],
  ['-bounces', 'bounces'],
  ['-unsubscribe', 'unsubscribe'],
  ['-leave', 'unsubscribe'],
];
const CONFIRM = /^(.+)-confirm\+([0-9a-z]+)$/;

/** The control address `address` would be, if its list exists; null when it has no control form. */
export function parseControlAddress(address: string): ControlAddress | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  const local = address.slice(0, at).toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  const confirm = CONFIRM.exec(local);
  if (confirm !== null)
    return { list: `${confirm[1]}@${domain}`, action: 'confirm', token: confirm[2]! };
  for (const [suffix, action] of SUFFIXES) {
    if (local.endsWith(suffix) && local.length > suffix.length)
      return { list: `${local.slice(0, -suffix.length)}@${domain}`, action };
  }
  return null;
}

export function controlAddress(list: string, action: Exclude<ControlAction, 'confirm'>): string {
  const at = list.lastIndexOf('@');
  return `${list.slice(0, at)}-${action}${list.slice(at)}`;
}

// --- confirmation tokens ---------------------------------------------------------------

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** 80 bits: guessing one is out of reach, and the local part stays short (RFC 5321: 64). */
const MAC_BYTES = 10;
export const CONFIRM_TTL_MS = 7 * 24 * 3600 * 1000;

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function mac(secret: string, list: string, member: string, expiresMinute: number): Buffer {
  return createHmac('sha256', secret)
    .update(
      `recrypt list confirm\u0000unsubscribe\u0000${list}\u0000${member}\u0000${expiresMinute}`,
    )
    .digest()
    .subarray(0, MAC_BYTES);
}

/** A token `member` sends back (to `team-confirm+<token>@`) to leave `list`. */
export function confirmationToken(
  secret: string,
  list: string,
  member: string,
  now: number,
): string {
  const expiresMinute = Math.ceil((now + CONFIRM_TTL_MS) / 60_000);
  const stamp = expiresMinute.toString(32);
  return `${stamp}${base32(mac(secret, list.toLowerCase(), member.toLowerCase(), expiresMinute))}`;
}

/** The expiry is in the token; the member is who sends it (the envelope sender). */
export function checkConfirmationToken(
  secret: string,
  list: string,
  member: string,
  token: string,
  now: number,
): 'valid' | 'expired' | 'invalid' {
  const macLength = Math.ceil((MAC_BYTES * 8) / 5);
  if (token.length <= macLength || token.length > macLength + 10) return 'invalid';
  const stamp = token.slice(0, -macLength);
  if (!/^[0-9a-v]+$/.test(stamp)) return 'invalid';
  const expiresMinute = parseInt(stamp, 32);
  const expected = Buffer.from(
    base32(mac(secret, list.toLowerCase(), member.toLowerCase(), expiresMinute)),
  );
  const given = Buffer.from(token.slice(-macLength));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
  return expiresMinute * 60_000 < now ? 'expired' : 'valid';
}
