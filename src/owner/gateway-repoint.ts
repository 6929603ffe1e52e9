/**
 * `recrypt owner gateway`: points an owner key file at the gateway's new address or TLS
 * identity (a new host name, a CA-issued certificate, a new self-signed key). The new
 * gateway is checked before anything is written: a request signed with the owner key must
 * be answered for this very account and group, which only the gateway holding the
 * enrolment can do. The key file is then re-encrypted (its gateway fields are bound to the
 * ciphertext) and replaced in one rename.
 */
import { recipientIdOf } from '../recrypt/index.js';
import { ownerClient } from './common.js';
import { OwnerError } from './errors.js';
import { replaceWithTemp, writeTemp } from './files.js';
import { callGateway, parseGatewayUrl } from './gateway-client.js';
import { encodeOwnerKeyFile, readOwnerKeyFile } from './key-file.js';

export interface RepointOptions {
  keyFile: string;
  passphrase: string;
  /** The admin API's new origin, https://host:port. */
  gateway: string;
  /** PEM to trust (a CA, or the gateway's self-signed certificate); null: the system's trust store. */
  gatewayCa: string | null;
}

export interface RepointResult {
  address: string;
  previous: string;
  gateway: string;
}

export async function repointGateway(options: RepointOptions): Promise<RepointResult> {
  const gateway = parseGatewayUrl(options.gateway).origin;
  const key = await readOwnerKeyFile(options.keyFile, options.passphrase);
  const candidate = { ...key, gateway, gatewayCa: options.gatewayCa };
  const account = await callGateway<{ address?: string; groupId?: string }>(
    ownerClient(candidate),
    'GET',
    '/v1/owner',
  );
  const groupId = Buffer.from(recipientIdOf(key.groupCertificate)).toString('hex');
  if (account.address !== key.address || account.groupId !== groupId) {
    throw new OwnerError(
      'gateway-mismatch',
      `the gateway at ${gateway} does not hold this account's enrolment (address or group differ); key file unchanged`,
    );
  }
  const temp = writeTemp(options.keyFile, await encodeOwnerKeyFile(candidate, options.passphrase));
  replaceWithTemp(temp, options.keyFile);
  return { address: key.address, previous: key.gateway, gateway };
}
