/**
 * The Redis key layout. Everything of one user lives under one hash tag, `{u:<address>}`,
 * so in a Cluster all of it sits in one slot and a Lua script may change it atomically.
 * Only two things are global: the set of user addresses (kept outside the per-user
 * change, written before a create and after a remove, and checked against the user
 * record on read, so a crash between the two leaves only a harmless stale entry) and
 * replay nonces (single-key SET NX PX).
 *
 *   <p>{u:A}:user      hash   address, displayName, enrolment, created, ownerCa, groupCert, groupId, ownerKeySpki
 *   <p>{u:A}:enrol     hash   hash (SHA-256 of the token), expires, used
 *   <p>{u:A}:devices   hash   id → immutable device JSON
 *   <p>{u:A}:names     hash   active device name → id
 *   <p>{u:A}:devids    hash   device RecipientId hex → id (all devices, revoked too)
 *   <p>{u:A}:seen      hash   id → last login (ms)
 *   <p>{u:A}:revoked   hash   id → revocation time (ms)
 *   <p>{u:A}:rk        hash   "<groupId>|<id>" → wrapped rk (61 bytes, key-wrapping.ts)
 *   <p>{u:A}:profile   string signed profile document
 *   <p>users           set    addresses
 *   <p>nonce:<scope>:<nonce>  string, with TTL
 *
 * Lists follow the same pattern under `{l:<list address>}` (list record,
 * members, "<list groupId>|<member groupId>" → wrapped key), so a rotation that
 * re-keys every member is one script on one slot.
 */

export const DEFAULT_PREFIX = 'recrypt:';

export function userKeys(prefix: string, address: string): string[] {
  const base = `${prefix}{u:${address}}:`;
  return ['user', 'enrol', 'devices', 'names', 'devids', 'seen', 'revoked', 'rk', 'profile'].map(
    (k) => base + k,
  );
}

export const USER_KEY = {
  user: 0,
  enrol: 1,
  devices: 2,
  names: 3,
  devids: 4,
  seen: 5,
  revoked: 6,
  rk: 7,
  profile: 8,
} as const;

export function usersSetKey(prefix: string): string {
  return `${prefix}users`;
}

export function nonceKey(prefix: string, scope: string, nonce: string): string {
  // The scope's length keeps ('a:b', 'c') and ('a', 'b:c') apart.
  return `${prefix}nonce:${scope.length}:${scope}:${nonce}`;
}

export function eventsChannel(prefix: string): string {
  return `${prefix}events`;
}

export function rkField(groupId: string, id: string): string {
  return `${groupId}|${id}`;
}
