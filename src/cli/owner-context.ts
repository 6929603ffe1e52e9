/**
 * How owner commands get the owner key: the key file (`--key-file`, default ./owner.key)
 * opened with the passphrase from `--passphrase-file`, RECRYPT_PASSPHRASE or a prompt.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  readOwnerKeyFile,
  readOwnerPublicInfo,
  type OwnerKey,
  type PublicLookup,
} from '../owner/index.js';
import { CliError } from './errors.js';
import { readSecret } from './secrets.js';

export const DEFAULT_KEY_FILE = 'owner.key';
export const PASSPHRASE_ENV = 'RECRYPT_PASSPHRASE';
export const P12_PASSWORD_ENV = 'RECRYPT_P12_PASSWORD';

export interface KeyFileOptions {
  keyFile: string;
  passphraseFile?: string;
}

export async function openOwnerKey(opts: KeyFileOptions): Promise<OwnerKey> {
  return (await openOwnerKeyWithPassphrase(opts)).key;
}

/** The key and its passphrase, for commands that write the key file again (`owner rotate`). */
export async function openOwnerKeyWithPassphrase(
  opts: KeyFileOptions,
): Promise<{ key: OwnerKey; passphrase: string }> {
  // Check the file first so that a missing file is reported before asking for a passphrase.
  readOwnerPublicInfo(opts.keyFile);
  const passphrase = await readSecret({
    what: 'passphrase',
    envName: PASSPHRASE_ENV,
    file: opts.passphraseFile,
  });
  return { key: await readOwnerKeyFile(opts.keyFile, passphrase), passphrase };
}

export function readPemFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new CliError(`${path} is not a PEM certificate`);
  return text;
}

/**
 * Where to look up public profiles: `--gateway`/`--ca` when given; else this owner's
 * gateway (from the key file) for addresses of the owner's own domain; else the default
 * (https://<domain>).
 */
export function publicLookup(
  address: string | undefined,
  opts: { gateway?: string; ca?: string; keyFile: string },
): { address: string; lookup: PublicLookup } {
  const info = existsSync(opts.keyFile) ? readOwnerPublicInfo(opts.keyFile) : null;
  const target = address ?? info?.address;
  if (target === undefined)
    throw new CliError(`no address given and no owner key file at ${opts.keyFile}`, 2);
  const ca = opts.ca !== undefined ? readPemFile(opts.ca, 'CA certificate') : undefined;
  if (opts.gateway !== undefined)
    return { address: target, lookup: { gateway: opts.gateway, ...(ca ? { ca } : {}) } };
  const domainOf = (a: string) => a.slice(a.lastIndexOf('@') + 1).toLowerCase();
  if (info !== null && domainOf(info.address) === domainOf(target)) {
    return { address: target, lookup: { gateway: info.gateway, ca: ca ?? info.gatewayCa } };
  }
  return { address: target, lookup: ca ? { ca } : {} };
}
