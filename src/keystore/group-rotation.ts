/**
 * A mailbox's group history and its rotation (docs/design.md §6): the part of KeyStore
 * that replaces a user's group key and keeps every group the mailbox had, and the checks
 * both adapters run on it, so that they accept and refuse exactly the same rotations.
 *
 * The rotation is one atomic change: the new group certificate becomes the user's (what
 * the MX encrypts to), the old one joins the history, the signed profile for the new
 * group replaces the published one, and every active device holds a key for the new
 * group — given in the change (fast mode: rk′ = δ·rk), or already stored (a device that
 * re-ran the blinded issue for it). A change that would leave an active device without a
 * key for the new group is refused, so the MX never encrypts to a group some device
 * cannot read. Keys for former groups are kept: old mail stays readable.
 */
import type { Scalar } from '../recrypt/types.js';
import { KeyStoreArgumentError, StaleStateError } from './errors.js';
import { type GatewayKey, wrapRecryptionKey } from './key-wrapping.js';
import { checkRecordId } from './prepare.js';
import type { Device, User } from './types.js';
import { checkDer, checkOpaque, checkRecipientIdHex, checkScalar } from './validate.js';

/** One group a mailbox has or had: its certificate and the certificate's RecipientId. */
export interface MailboxGroup {
  groupId: string;
  /** The group certificate (DER). */
  certificate: Uint8Array;
}

export interface GroupRotation {
  /** The group being replaced; a rotation made against an older one is stale (refused). */
  fromGroupId: string;
  /** The new group. */
  group: MailboxGroup;
  /** The owner-signed profile document for the new group (opaque here). */
  profile: string;
  /**
   * Device record id → rk for the new group. Devices that already hold a key for the new
   * group may be left out; every other active device must be named.
   */
  keys: ReadonlyMap<string, Scalar>;
}

export interface GroupStore {
  /**
   * Makes `rotation.group` the user's group in one atomic change (see above) and
   * notifies `key-added` for every key it stored. `StaleStateError` when the user's
   * group is no longer `fromGroupId`, a named device is no longer active, or an active
   * device would have no key for the new group; `KeyStoreArgumentError` for a group the
   * mailbox already had; `NotFoundError('user')` for no enrolled user. Returns the user.
   */
  rotateGroup(address: string, rotation: GroupRotation): Promise<User>;
  /** The groups the mailbox had before its current one, oldest first; [] if none. */
  formerGroups(address: string): Promise<MailboxGroup[]>;
}

/** At most this many former groups are kept per mailbox (each is a certificate). */
export const MAX_FORMER_GROUPS = 256;
const MAX_PROFILE_CHARS = 256 * 1024;
const MAX_ROTATED_DEVICES = 1024;

export function checkMailboxGroup(group: MailboxGroup): MailboxGroup {
  if (typeof group !== 'object' || group === null) throw new KeyStoreArgumentError('group missing');
  return {
    groupId: checkRecipientIdHex(group.groupId, 'groupId'),
    certificate: new Uint8Array(checkDer(group.certificate, 'certificate')),
  };
}

export function checkRotation(rotation: GroupRotation): GroupRotation {
  if (typeof rotation !== 'object' || rotation === null)
    throw new KeyStoreArgumentError('rotation missing');
  if (!(rotation.keys instanceof Map) || rotation.keys.size > MAX_ROTATED_DEVICES)
    throw new KeyStoreArgumentError(`keys must be a map of at most ${MAX_ROTATED_DEVICES}`);
  const keys = new Map<string, Scalar>();
  for (const [id, rk] of rotation.keys) keys.set(checkRecordId(id), checkScalar(rk));
  return {
    fromGroupId: checkRecipientIdHex(rotation.fromGroupId, 'fromGroupId'),
    group: checkMailboxGroup(rotation.group),
    profile: checkOpaque(rotation.profile, 'profile document', MAX_PROFILE_CHARS),
    keys,
  };
}

/** What an adapter read inside its transaction (or before its script) to check against. */
export interface RotationState {
  user: User;
  formerGroupIds: readonly string[];
  activeDevices: readonly Device[];
  /** Record ids of the active devices that already hold a key for the new group. */
  alreadyKeyed: ReadonlySet<string>;
}

/**
 * Throws unless `rotation` applies to `state`; returns each named device's wrapped key
 * (bound to the new group and the device's RecipientId), by device record id.
 */
export function planRotation(
  state: RotationState,
  rotation: GroupRotation,
  gatewayKey: GatewayKey,
): Map<string, Buffer> {
  const current = state.user.owner;
  if (current === null) throw new StaleStateError(`${state.user.address} is not enrolled`);
  if (current.groupId !== rotation.fromGroupId)
    throw new StaleStateError('the mailbox was rotated meanwhile (stale group id)');
  const newId = rotation.group.groupId;
  if (newId === current.groupId || state.formerGroupIds.includes(newId))
    throw new KeyStoreArgumentError('the mailbox already had this group');
  if (state.formerGroupIds.length >= MAX_FORMER_GROUPS)
    throw new KeyStoreArgumentError(`a mailbox keeps at most ${MAX_FORMER_GROUPS} former groups`);
  const active = new Map(state.activeDevices.map((device) => [device.id, device]));
  const wrapped = new Map<string, Buffer>();
  for (const [id, rk] of rotation.keys) {
    const device = active.get(id);
    if (device === undefined) throw new StaleStateError(`device ${id} is not active`);
    wrapped.set(
      id,
      wrapRecryptionKey(gatewayKey, rk, { groupId: newId, targetId: device.deviceId }),
    );
  }
  for (const device of state.activeDevices) {
    if (!wrapped.has(device.id) && !state.alreadyKeyed.has(device.id))
      throw new StaleStateError(
        `device ${device.name} (${device.id}) has no key for the new group`,
      );
  }
  return wrapped;
}
