/**
 * `owner init`: makes the owner CA and the group key on this machine, writes them into
 * the owner key file, enrols with the gateway (uploading only the two certificates), and
 * publishes the signed profile. Order, so that nothing is half-done: the key file is
 * written in full to a temp name first; enrolment consumes the one-time token; only then
 * is the key file moved into place (a failed enrolment leaves no file and an unused
 * token; the secrets are never lost once the token is gone).
 */
import { existsSync } from 'node:fs';
import {
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../recrypt/index.js';
import { ownerUdf } from '../profiles/index.js';
import { checkAddress, type ImapSettings } from './common.js';
import { OwnerError } from './errors.js';
import { commitTemp, discardTemp, writeTemp } from './files.js';
import { callGateway, parseGatewayUrl } from './gateway-client.js';
import { encodeOwnerKeyFile, type OwnerKey } from './key-file.js';
import { publishProfile } from './profile.js';

export interface OwnerInitOptions {
  address: string;
  /** The one-time enrolment token from the operator's `user add`. */
  token: string;
  /** https://host:port of the gateway's admin API. */
  gateway: string;
  /** PEM of the gateway's TLS certificate when it is self-signed. */
  gatewayCa: string | null;
  keyFile: string;
  passphrase: string;
  now?: Date;
}

export interface OwnerInitResult {
  address: string;
  keyFile: string;
  groupId: string;
  /** UDF fingerprint of the owner key: what the profile carries. */
  udf: string;
  imap: ImapSettings | null;
  /** Why publishing the profile failed after a successful enrolment, if it did. */
  profileError: string | null;
}

export async function ownerInit(options: OwnerInitOptions): Promise<OwnerInitResult> {
  const address = checkAddress(options.address);
  const gateway = parseGatewayUrl(options.gateway).origin;
  if (typeof options.token !== 'string' || !/^[A-Za-z0-9_-]{16,256}$/.test(options.token)) {
    throw new OwnerError(
      'invalid-argument',
      'the enrolment token is malformed (expected the base64url text `recrypt user add` printed)',
    );
  }
  if (existsSync(options.keyFile)) {
    throw new OwnerError(
      'exists',
      `${options.keyFile} already exists; not overwriting an owner key (choose another --key-file)`,
    );
  }
  const now = options.now ?? new Date();
  const ca = await issueOwnerCa({ now });
  const groupSecret = randomScalar();
  const groupCertificate = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(groupSecret),
    address,
    name: address.length <= 64 ? address : address.slice(0, 64),
    now,
  });
  const key: OwnerKey = {
    address,
    gateway,
    gatewayCa: options.gatewayCa,
    ownerCaSecret: ca.secret,
    groupSecret,
    ownerCaCertificate: ca.certificate,
    groupCertificate,
  };
  const temp = writeTemp(options.keyFile, await encodeOwnerKeyFile(key, options.passphrase));
  let enrolled: { groupId?: string; name?: string; imap?: ImapSettings };
  try {
    enrolled = await callGateway(
      { gateway, ca: options.gatewayCa, auth: { kind: 'none' } },
      'POST',
      '/v1/enrol',
      {
        address,
        token: options.token,
        ownerCaCertificate: Buffer.from(ca.certificate).toString('base64'),
        groupCertificate: Buffer.from(groupCertificate).toString('base64'),
      },
    );
  } catch (error) {
    discardTemp(temp);
    if (error instanceof OwnerError && error.status === 401) {
      throw new OwnerError(
        'gateway-refused',
        'the gateway refused the enrolment token (wrong, expired or already used); ask the operator for a new one',
        401,
      );
    }
    throw error;
  }
  try {
    commitTemp(temp, options.keyFile);
  } catch (error) {
    // Enrolled: the token is spent and these secrets are the account's only key. Keep them.
    throw new OwnerError(
      'io',
      `enrolled, but ${(error as Error).message}; the owner key file was left at ${temp}: move it to a safe name`,
    );
  }
  let profileError: string | null = null;
  try {
    await publishProfile(key, {
      ...(enrolled.name !== undefined ? { name: enrolled.name } : {}),
      now,
    });
  } catch (error) {
    profileError = (error as Error).message;
  }
  return {
    address,
    keyFile: options.keyFile,
    groupId: enrolled.groupId ?? '',
    udf: ownerUdf(publicPoint(ca.secret)),
    imap: enrolled.imap ?? null,
    profileError,
  };
}
