/**
 * The owner's side of a full rotation after it started (`owner rotate --continue`,
 * `--cancel`; docs/design.md §6). `--continue` answers every device that asked: it
 * checks the device certificate is one the owner CA issued and the request's MAC under
 * x(c·D), opens α with g′ (from `<key file>.next`), and sends β = g′·α; once every active
 * device holds a key for g′ it commits, and `.next` becomes the key file.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import {
  certificatePublicPoint,
  ownerRespond,
  recipientIdOf,
  scalarToBytes,
} from '../recrypt/index.js';
import { ownerClient } from './common.js';
import { OwnerError } from './errors.js';
import { discardTemp } from './files.js';
import { callGateway } from './gateway-client.js';
import { decodeOwnerKeyFile, type OwnerKey } from './key-file.js';
import { openAlpha } from './list-join.js';
import { rekeyMac, sameMac } from './rekey-wire.js';
import { groupIdOf, pendingKeyFile } from './rotation.js';

interface Status {
  pending: { groupId: string; started: string; expires: string } | null;
  devices?: Array<{ id: string; name: string; keyed: boolean }>;
  requests?: Array<{ id: string; certificate: string; sealedAlpha: string; mac: string }>;
}

export interface ContinueResult {
  groupId: string;
  /** Devices answered now. */
  answered: string[];
  /** Requests refused: not a device of this owner CA, or a MAC that does not verify. */
  refused: string[];
  /** Active devices still without a key for the new group. */
  missing: string[];
  committed: boolean;
}

async function openNext(
  key: OwnerKey,
  options: { keyFile: string; passphrase: string },
): Promise<OwnerKey> {
  const file = pendingKeyFile(options.keyFile);
  if (!existsSync(file))
    throw new OwnerError('key-file-missing', `no pending rotation here (${file} is missing)`);
  const next = await decodeOwnerKeyFile(readFileSync(file, 'utf8'), options.passphrase, file);
  if (next.address !== key.address)
    throw new OwnerError('corrupt-key-file', `${file} is for another address`);
  return next;
}

/** The requests the owner answers: issued by its CA, and carrying the device's MAC. */
function answerable(key: OwnerKey, next: OwnerKey, groupId: string, status: Status) {
  const ca = new X509Certificate(Buffer.from(key.ownerCaCertificate));
  const names = new Map((status.devices ?? []).map((d) => [d.id, d.name]));
  const betas: Array<{ id: string; beta: string }> = [];
  const answered: string[] = [];
  const refused: string[] = [];
  for (const request of status.requests ?? []) {
    const name = names.get(request.id) ?? request.id;
    try {
      const der = new Uint8Array(Buffer.from(request.certificate, 'base64'));
      const certificate = new X509Certificate(Buffer.from(der));
      if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey))
        throw new Error('not issued by the owner CA');
      const expected = rekeyMac(certificatePublicPoint(der), key.ownerCaSecret, {
        address: key.address,
        groupId,
        deviceId: Buffer.from(recipientIdOf(der)).toString('hex'),
        sealedAlpha: request.sealedAlpha,
      });
      if (!sameMac(expected, request.mac)) throw new Error('MAC does not verify');
      const alpha = openAlpha(request.sealedAlpha, next.groupSecret, groupId, 'device-rekey');
      const beta = ownerRespond(next.groupSecret, alpha);
      betas.push({ id: request.id, beta: Buffer.from(scalarToBytes(beta)).toString('base64') });
      answered.push(name);
    } catch {
      refused.push(name);
    }
  }
  return { betas, answered, refused };
}

export async function continueFullRotation(
  key: OwnerKey,
  options: { keyFile: string; passphrase: string },
): Promise<ContinueResult> {
  const next = await openNext(key, options);
  const groupId = groupIdOf(next.groupCertificate);
  const client = ownerClient(key);
  const status = await callGateway<Status>(client, 'GET', '/v1/owner/rotation');
  if (status.pending?.groupId !== groupId)
    throw new OwnerError(
      'invalid-argument',
      `the gateway has no pending rotation to ${pendingKeyFile(options.keyFile)}'s group (expired or cancelled?): run \`recrypt owner rotate --cancel\``,
    );
  const { betas, answered, refused } = answerable(key, next, groupId, status);
  let missing = (status.devices ?? []).filter((d) => !d.keyed).map((d) => d.name);
  if (betas.length > 0) {
    const reply = await callGateway<{ missing: string[] }>(
      client,
      'POST',
      '/v1/owner/rotation/keys',
      { groupId, responses: betas },
    );
    missing = reply.missing;
  }
  if (missing.length > 0) return { groupId, answered, refused, missing, committed: false };
  await callGateway(client, 'POST', '/v1/owner/rotation/commit', { groupId });
  const file = pendingKeyFile(options.keyFile);
  try {
    renameSync(file, options.keyFile);
  } catch (error) {
    throw new OwnerError(
      'io',
      `rotated, but ${(error as Error).message}; the new owner key file is ${file}: move it over ${options.keyFile}`,
    );
  }
  return { groupId, answered, refused, missing, committed: true };
}

export async function cancelFullRotation(
  key: OwnerKey,
  options: { keyFile: string; passphrase: string },
): Promise<void> {
  const client = ownerClient(key);
  const file = pendingKeyFile(options.keyFile);
  if (existsSync(file)) {
    // Never drop a g′ the gateway already uses (a commit whose answer was lost).
    const next = await openNext(key, options);
    const current = await callGateway<{ groupId: string }>(client, 'GET', '/v1/owner');
    if (current.groupId === groupIdOf(next.groupCertificate))
      throw new OwnerError(
        'exists',
        `the rotation was already committed; ${file} holds the current key: move it over ${options.keyFile}`,
      );
  }
  await callGateway(client, 'DELETE', '/v1/owner/rotation');
  discardTemp(file);
}
