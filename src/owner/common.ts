/** Small shared pieces of the owner tool: address checks, generated secrets, the signing identity. */
import { randomBytes } from 'node:crypto';
import { privateKeyObject } from '../recrypt/index.js';
import { parseAddress } from '../profiles/index.js';
import { OwnerError } from './errors.js';
import type { GatewayClientOptions } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';

/**
 * An address as certificates and profile URLs need it (dot-atom local part, ASCII host
 * name; domain lower-cased). Stricter than the key store on purpose: an address that
 * cannot go into a certificate's rfc822Name cannot be enrolled.
 */
export function checkAddress(address: string): string {
  try {
    const { local, domain } = parseAddress(address);
    return `${local}@${domain}`;
  } catch (error) {
    throw new OwnerError(
      'invalid-argument',
      `malformed address ${JSON.stringify(address)}: ${(error as Error).message.replace(/^address: /, '')}`,
    );
  }
}

/**
 * A generated password: 144 random bits, base64url (24 characters, no shell
 * metacharacters), never starting with "-": command-line clients (swaks, for one) take
 * such an argument for an option whatever way it is passed.
 */
export function generatePassword(): string {
  for (;;) {
    const password = randomBytes(18).toString('base64url');
    if (!password.startsWith('-')) return password;
  }
}

/** How to reach the gateway as this owner: every request signed with the owner (CA) key. */
export function ownerClient(key: OwnerKey): GatewayClientOptions {
  return {
    gateway: key.gateway,
    ca: key.gatewayCa,
    auth: {
      kind: 'owner',
      address: key.address,
      key: privateKeyObject(key.ownerCaSecret),
    },
  };
}

/** What the gateway tells owners about its IMAP proxy (the admin API's `imap` field). */
export interface ImapSettings {
  host: string;
  port: number;
  starttlsPort: number;
}
