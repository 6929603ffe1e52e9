/**
 * A full mailbox rotation while it waits for the devices (docs/design.md §6): the new
 * group and its signed profile, not yet the user's, and each device's blinded-issue
 * request for it (sealed α for the owner, τ = t⁻¹ for the gateway, the device's MAC).
 * The MX keeps encrypting to the current group meanwhile; `rotateGroup` makes the new
 * one current once every active device holds a key for it.
 *
 * A pending rotation belongs to the group it replaces: once the user's group is another
 * (the rotation committed, or another one did) or it expired, it reads as absent, so no
 * cleanup has to be atomic with the commit. τ is wrapped under the gateway key like an
 * rk, bound to (new group, device record id).
 */
import type { Scalar } from '../recrypt/types.js';
import { KeyStoreArgumentError } from './errors.js';
import { checkMailboxGroup, type MailboxGroup } from './group-rotation.js';
import { type GatewayKey, unwrapRecryptionKey, wrapRecryptionKey } from './key-wrapping.js';
import { checkRecordId } from './prepare.js';
import { checkOpaque, checkRecipientIdHex, checkScalar } from './validate.js';

export interface PendingRotation {
  /** The group it replaces (the user's current one when it started). */
  fromGroupId: string;
  group: MailboxGroup;
  /** The owner-signed profile for the new group, published at the commit. */
  profile: string;
  started: number;
  expires: number;
}

export interface RekeyRequest {
  /** The device's record id. */
  id: string;
  /** The pending group it asks a key for. */
  groupId: string;
  /** α = t·d⁻¹ sealed to the new group key (the owner opens it). */
  sealedAlpha: string;
  /** The device's MAC over the request, for the owner (the gateway cannot check it). */
  mac: string;
  /** τ = t⁻¹. */
  tau: Scalar;
  created: number;
}

export interface RekeyStore {
  /**
   * Records the pending rotation (replacing an earlier one and its requests).
   * `StaleStateError` when the user's group is not `fromGroupId`; `NotFoundError('user')`.
   */
  startRotation(
    address: string,
    pending: Pick<PendingRotation, 'fromGroupId' | 'group' | 'profile'>,
    ttlMs: number,
  ): Promise<PendingRotation>;
  /** The pending rotation, or null (none, expired, or the group it replaces is gone). */
  pendingRotation(address: string): Promise<PendingRotation | null>;
  cancelRotation(address: string): Promise<void>;
  /**
   * Stores (or replaces) a device's request for the pending group. `StaleStateError`
   * when no rotation to `request.groupId` is pending.
   */
  putRekeyRequest(address: string, request: Omit<RekeyRequest, 'created'>): Promise<void>;
  /** The requests for the pending rotation's group. */
  rekeyRequests(address: string): Promise<RekeyRequest[]>;
  removeRekeyRequest(address: string, id: string): Promise<void>;
}

const TAU_GROUP = 'rekey-tau';
const MAX_TTL_MS = 30 * 24 * 3600 * 1000;

export function checkRotationTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL_MS)
    throw new KeyStoreArgumentError('rotation ttl must be a positive integer of at most 30 days');
  return ttlMs;
}

export function encodePending(
  pending: Pick<PendingRotation, 'fromGroupId' | 'group' | 'profile'>,
  now: number,
  ttlMs: number,
): { record: string; pending: PendingRotation } {
  const group = checkMailboxGroup(pending.group);
  const checked: PendingRotation = {
    fromGroupId: checkRecipientIdHex(pending.fromGroupId, 'fromGroupId'),
    group,
    profile: checkOpaque(pending.profile, 'profile document', 256 * 1024),
    started: now,
    expires: now + checkRotationTtl(ttlMs),
  };
  const record = JSON.stringify({
    ...checked,
    group: {
      groupId: group.groupId,
      certificate: Buffer.from(group.certificate).toString('base64'),
    },
  });
  return { record, pending: checked };
}

/** The record as a pending rotation, or null when it no longer applies. */
export function decodePending(
  record: string | null | undefined,
  currentGroupId: string | null,
  now: number,
): PendingRotation | null {
  if (record === null || record === undefined) return null;
  const parsed = JSON.parse(record) as PendingRotation & {
    group: { groupId: string; certificate: string };
  };
  if (parsed.fromGroupId !== currentGroupId || parsed.expires <= now) return null;
  return {
    ...parsed,
    group: {
      groupId: parsed.group.groupId,
      certificate: new Uint8Array(Buffer.from(parsed.group.certificate, 'base64')),
    },
  };
}

export function encodeRekey(
  request: Omit<RekeyRequest, 'created'>,
  key: GatewayKey,
  now: number,
): string {
  const id = checkRecordId(request.id);
  const groupId = checkRecipientIdHex(request.groupId, 'groupId');
  return JSON.stringify({
    id,
    groupId,
    sealedAlpha: checkOpaque(request.sealedAlpha, 'sealedAlpha', 1024),
    mac: checkOpaque(request.mac, 'mac', 256),
    tau: wrapRecryptionKey(key, checkScalar(request.tau, 'tau'), {
      groupId: TAU_GROUP,
      targetId: `${groupId}|${id}`,
    }).toString('base64'),
    created: now,
  });
}

export function decodeRekey(record: string, key: GatewayKey): RekeyRequest {
  const r = JSON.parse(record) as Omit<RekeyRequest, 'tau'> & { tau: string };
  return {
    ...r,
    tau: unwrapRecryptionKey(key, Buffer.from(r.tau, 'base64'), {
      groupId: TAU_GROUP,
      targetId: `${r.groupId}|${r.id}`,
    }),
  };
}
