/**
 * The bridge's account (README.md, "Account"): the device key (from its .p12), the
 * device's gateway credentials and the local password clients log in with, kept sealed
 * in `<dataDir>/account.bin` under the cache key. The first `recrypt bridge` makes it from
 * the .p12 and the device's IMAP settings; later starts need only the bridge passphrase.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RecryptError, readPkcs12, recipientIdOf, type DecryptKey } from '../recrypt/index.js';
import { generatePassword } from '../owner/common.js';
import { BridgeError } from './errors.js';
import { readSealed, writeSealed } from './sealed-file.js';
import type { SubmissionSettings } from './smtp-relay.js';
import type { UpstreamSettings } from './upstream.js';

export interface BridgeAccount {
  version: 1;
  /** The mailbox address; also the local IMAP user name. */
  address: string;
  upstream: UpstreamSettings;
  /** The gateway's submission service, when the bridge also relays sending (smtp-relay.ts). */
  submission?: SubmissionSettings;
  /** Origin of the signed profile (group-certificate.ts); absent: `https://<domain>`. */
  profileUrl?: string;
  /** The device secret d, hex. */
  deviceSecret: string;
  /** DER of the device certificate, base64 (its recipient id names the device in envelopes). */
  certificate: string;
  /** What local clients log in with (printed once, at setup). */
  localPassword: string;
}

export interface AccountSetup {
  p12: Uint8Array;
  p12Password: string;
  address: string;
  upstream: UpstreamSettings;
  submission?: SubmissionSettings;
  profileUrl?: string;
}

/**
 * Settings a later start changes (docs/bridge.md, "Changing the settings"): the gateway's
 * address, its submission service, the CA to trust for both, the device password.
 */
export interface AccountUpdate {
  gateway?: { host: string; port: number; tls: 'implicit' | 'starttls' };
  submission?: SubmissionSettings;
  ca?: string;
  password?: string;
}

const ACCOUNT_NAME = 'account';

function accountFile(dataDir: string): string {
  return join(dataDir, 'account.bin');
}

/** A new account from the .p12 (not saved: see `saveAccount`, once the gateway accepted it). */
export async function createAccount(setup: AccountSetup): Promise<BridgeAccount> {
  let device;
  try {
    device = await readPkcs12(setup.p12, setup.p12Password);
  } catch (error) {
    if (error instanceof RecryptError && error.code === 'bad-password')
      throw new BridgeError('bad-passphrase', 'wrong .p12 password');
    throw new BridgeError(
      'invalid-argument',
      `the .p12 does not open: ${(error as Error).message}`,
    );
  }
  const account: BridgeAccount = {
    version: 1,
    address: setup.address,
    upstream: setup.upstream,
    ...(setup.submission !== undefined ? { submission: setup.submission } : {}),
    ...(setup.profileUrl !== undefined ? { profileUrl: setup.profileUrl } : {}),
    deviceSecret: device.deviceSecret.toString(16),
    certificate: Buffer.from(device.certificate).toString('base64'),
    localPassword: generatePassword(),
  };
  return account;
}

function pick(ca: string | undefined): { ca?: string } {
  return ca !== undefined ? { ca } : {};
}

/** `account` with `update` applied (not saved: see `saveAccount`, once the gateway accepted it). */
export function updateAccount(account: BridgeAccount, update: AccountUpdate): BridgeAccount {
  const ca = update.ca !== undefined ? { ca: update.ca } : {};
  const upstream: UpstreamSettings = {
    ...account.upstream,
    ...(update.gateway ?? {}),
    ...ca,
    ...(update.password !== undefined ? { password: update.password } : {}),
  };
  // A new host is checked against its own name, not one configured for the old host.
  if (update.gateway !== undefined && update.gateway.host !== account.upstream.host)
    delete upstream.servername;
  const base = update.submission ?? account.submission;
  return {
    ...account,
    upstream,
    // The CA given before stays unless a new one is given (one gateway, one certificate).
    ...(base !== undefined
      ? { submission: { ...pick(account.submission?.ca), ...base, ...ca } }
      : {}),
  };
}

export function saveAccount(dataDir: string, key: Buffer, account: BridgeAccount): void {
  writeSealed(
    accountFile(dataDir),
    key,
    ACCOUNT_NAME,
    Buffer.from(JSON.stringify(account), 'utf8'),
  );
}

/** The account of an earlier setup; null when there is none yet. */
export function loadAccount(dataDir: string, key: Buffer): BridgeAccount | null {
  const plain = readSealed(accountFile(dataDir), key, ACCOUNT_NAME);
  if (plain === null) return null;
  const account = JSON.parse(plain.toString('utf8')) as BridgeAccount;
  if (account.version !== 1)
    throw new BridgeError('corrupt-cache', 'the bridge account has an unknown layout');
  return account;
}

export function decryptKeyOf(account: BridgeAccount): DecryptKey {
  const certificate = new Uint8Array(Buffer.from(account.certificate, 'base64'));
  return { secret: BigInt(`0x${account.deviceSecret}`), recipientId: recipientIdOf(certificate) };
}

export function readP12File(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new BridgeError(
      'invalid-argument',
      `cannot read the .p12 file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}
