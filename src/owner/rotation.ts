/**
 * `owner rotate` (docs/design.md §6, docs/threat-model.md "Rotating a mailbox's group
 * key"): a new group g′ and group certificate made here, the profile for it signed here.
 * Fast mode sends δ = g′·g⁻¹ once; the gateway re-keys every active device (rk′ = δ·rk)
 * and switches group, profile and keys in one change. Full mode sends no δ: the rotation
 * waits at the gateway until every device re-ran the blinded issue for g′ and the owner
 * answered (rotation-full.ts); the switch is the same one change.
 *
 * The owner key file must never lose g′ once the gateway uses it, nor g (old mail). So:
 * the rotated key file (g′ current, g appended to its former groups) is written first,
 * in full, as `<key file>.next`; then the gateway is asked; on success it replaces the
 * key file (rename), on a refusal it is deleted. A `.next` left by an interrupted run is
 * settled by the next `owner rotate`: kept if the gateway already switched to its group,
 * deleted if not.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { buildProfile, signProfile } from '../profiles/index.js';
import {
  certificatePublicPoint,
  invertScalar,
  issueGroupCertificate,
  multiplyScalars,
  publicPoint,
  randomScalar,
  recipientIdOf,
  scalarToBytes,
} from '../recrypt/index.js';
import { ownerClient } from './common.js';
import { OwnerError } from './errors.js';
import { discardTemp, writeTemp } from './files.js';
import { callGateway } from './gateway-client.js';
import { decodeOwnerKeyFile, encodeOwnerKeyFile, type OwnerKey } from './key-file.js';
import { policyToPublish } from './policy.js';

export interface RotateOptions {
  keyFile: string;
  passphrase: string;
  /** fast: δ re-keys every device now; full (default): every device re-runs the blinded issue. */
  mode?: 'fast' | 'full';
  now?: Date;
}

export interface RotateResult {
  mode: 'fast' | 'full';
  /** Full mode: the new group waits for the devices (`owner rotate --continue`). */
  pending: boolean;
  groupId: string;
  formerGroupId: string;
  /** Fast: active devices re-keyed; full: active devices that must re-key. */
  devices: number;
  /** The key as it now is (also written to the key file). */
  key: OwnerKey;
  /** Set when a `.next` file of an interrupted rotation was settled first. */
  recovered: 'completed' | 'discarded' | null;
}

export const groupIdOf = (certificate: Uint8Array) =>
  Buffer.from(recipientIdOf(certificate)).toString('hex');

export function pendingKeyFile(keyFile: string): string {
  return `${keyFile}.next`;
}

/**
 * Settles a `.next` key file an interrupted rotation left: it becomes the key file if
 * the gateway's group is its group, else it is deleted. Returns the key file's key.
 */
async function settlePending(
  key: OwnerKey,
  options: RotateOptions,
): Promise<{ key: OwnerKey; recovered: RotateResult['recovered'] }> {
  const next = pendingKeyFile(options.keyFile);
  if (!existsSync(next)) return { key, recovered: null };
  const pending = await decodeOwnerKeyFile(readFileSync(next, 'utf8'), options.passphrase, next);
  if (
    !Buffer.from(publicPoint(pending.groupSecret)).equals(
      Buffer.from(certificatePublicPoint(pending.groupCertificate)),
    )
  )
    throw new OwnerError('corrupt-key-file', `${next}: its group secret is not its certificate's`);
  const current = await callGateway<{ groupId: string }>(ownerClient(key), 'GET', '/v1/owner');
  if (current.groupId === groupIdOf(pending.groupCertificate)) {
    renameSync(next, options.keyFile);
    return { key: pending, recovered: 'completed' };
  }
  const full = await callGateway<{ pending: { groupId: string } | null }>(
    ownerClient(key),
    'GET',
    '/v1/owner/rotation',
  );
  if (full.pending?.groupId === groupIdOf(pending.groupCertificate))
    throw new OwnerError(
      'exists',
      'a full rotation is waiting for the devices: `recrypt owner rotate --continue` (or --cancel)',
    );
  discardTemp(next);
  return { key, recovered: 'discarded' };
}

/** The new group: its secret and a certificate from the owner CA, and the key file after. */
async function nextGroup(key: OwnerKey, now: Date): Promise<OwnerKey> {
  const groupSecret = randomScalar();
  const groupCertificate = await issueGroupCertificate({
    ca: key.ownerCaCertificate,
    caSecret: key.ownerCaSecret,
    publicKey: publicPoint(groupSecret),
    address: key.address,
    name: key.address.length <= 64 ? key.address : key.address.slice(0, 64),
    now,
  });
  return {
    ...key,
    groupSecret,
    groupCertificate,
    formerGroups: [
      ...(key.formerGroups ?? []),
      { groupSecret: key.groupSecret, groupCertificate: key.groupCertificate },
    ],
  };
}

export async function rotateMailbox(
  given: OwnerKey,
  options: RotateOptions,
): Promise<RotateResult> {
  const now = options.now ?? new Date();
  const { key, recovered } = await settlePending(given, options);
  const client = ownerClient(key);
  const owner = await callGateway<{ groupId: string; name?: string }>(client, 'GET', '/v1/owner');
  const formerGroupId = groupIdOf(key.groupCertificate);
  if (owner.groupId !== formerGroupId) {
    throw new OwnerError(
      'invalid-argument',
      `the gateway's group (${owner.groupId.slice(0, 16)}…) is not this key file's: is ${options.keyFile} the current owner key file?`,
    );
  }
  const mode = options.mode ?? 'full';
  const next = await nextGroup(key, now);
  const delta = multiplyScalars(next.groupSecret, invertScalar(key.groupSecret));
  const name = owner.name !== undefined && owner.name.trim() !== '' ? owner.name : key.address;
  // The profile for g′ keeps the owner's policy (a `require: encrypt` must survive).
  const policy = await policyToPublish(key);
  const profile = signProfile(
    buildProfile({
      address: key.address,
      name,
      ownerPublicKey: publicPoint(key.ownerCaSecret),
      groupCertificate: next.groupCertificate,
      prefer: policy.prefer,
      require: policy.require,
      issued: now,
    }),
    key.ownerCaSecret,
  );
  const nextFile = pendingKeyFile(options.keyFile);
  const temp = writeTemp(nextFile, await encodeOwnerKeyFile(next, options.passphrase));
  try {
    renameSync(temp, nextFile);
  } catch (error) {
    discardTemp(temp);
    throw new OwnerError('io', `cannot write ${nextFile}: ${(error as Error).message}`);
  }
  let reply: { devices?: number };
  try {
    reply = await callGateway(client, 'POST', '/v1/owner/rotation', {
      mode,
      expectedGroupId: formerGroupId,
      groupCertificate: Buffer.from(next.groupCertificate).toString('base64'),
      // Full mode sends no δ: the gateway must learn nothing that links g′ to g.
      ...(mode === 'fast' ? { delta: Buffer.from(scalarToBytes(delta)).toString('base64') } : {}),
      profile,
    });
  } catch (error) {
    // Refused (4xx): the gateway still uses g, so g′ must not become the key file's. Not
    // answered (unreachable, 5xx): it may have switched; keep `.next` for the next run.
    if (error instanceof OwnerError && error.status !== undefined && error.status < 500)
      discardTemp(nextFile);
    throw error;
  }
  if (mode === 'full') {
    // g′ stays in `.next` until the commit: the gateway still uses g.
    return {
      mode,
      pending: true,
      groupId: groupIdOf(next.groupCertificate),
      formerGroupId,
      devices: reply.devices ?? 0,
      key,
      recovered,
    };
  }
  try {
    renameSync(nextFile, options.keyFile);
  } catch (error) {
    throw new OwnerError(
      'io',
      `rotated, but ${(error as Error).message}; the new owner key file is ${nextFile}: move it over ${options.keyFile}`,
    );
  }
  return {
    mode,
    pending: false,
    groupId: groupIdOf(next.groupCertificate),
    formerGroupId,
    devices: reply.devices ?? 0,
    key: next,
    recovered,
  };
}
