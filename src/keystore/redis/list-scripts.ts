/**
 * The Redis adapter's list changes, as Lua scripts over one list's keys, all
 * under the hash tag `{l:<list address>}` (one cluster slot):
 *
 *   <p>{l:L}:list     hash  address, displayName, owner, policy, subjectTag, groupId, created
 *   <p>{l:L}:groups   hash  groupId → {"certificate": base64 DER, "seq": n} (current and former)
 *   <p>{l:L}:members  hash  member address → {"memberGroupId", "joined"[, "certificate":
 *                          base64 DER, for a remote member]}
 *   <p>{l:L}:rk       hash  "<groupId>|<member>" → wrapped rk_{list→member}
 *   <p>lists              set   list addresses (index; checked against the record on read)
 *   <p>memberof:<M>       set   lists of member M (index; checked against `members` on read)
 *
 * Wrapping needs the gateway key, which Lua does not have: the adapter reads, wraps, and
 * the script applies the change only if what it was computed from is still there
 * (the list's group, the member records); otherwise 'E_RETRY' and the adapter retries.
 * As in scripts.ts every precondition is checked before the first write.
 */

const PRELUDE = `
local LIST, GROUPS, MEMBERS, RK = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'hash' then
    return redis.error_reply('E_CORRUPT key ' .. KEYS[i] .. ' has type ' .. t)
  end
end
local function drop_member_keys(member)
  local suffix = '|' .. member
  for _, field in ipairs(redis.call('HKEYS', RK)) do
    if string.sub(field, -#suffix) == suffix then redis.call('HDEL', RK, field) end
  end
end
`;

export const LIST_SCRIPTS = {
  /** ARGV: address, displayName, owner, policy, subjectTag, groupId, groupJson, created */
  rlCreate: `${PRELUDE}
if redis.call('EXISTS', LIST) == 1 then return 'E_DUP' end
redis.call('HSET', LIST, 'address', ARGV[1], 'displayName', ARGV[2], 'owner', ARGV[3], 'policy', ARGV[4],
  'subjectTag', ARGV[5], 'groupId', ARGV[6], 'created', ARGV[8])
redis.call('HSET', GROUPS, ARGV[6], ARGV[7])
return 'OK'`,

  /** ARGV: (field, value) pairs */
  rlUpdate: `${PRELUDE}
if redis.call('EXISTS', LIST) == 0 then return 'E_NOT_FOUND' end
if #ARGV > 0 then redis.call('HSET', LIST, unpack(ARGV)) end
return 'OK'`,

  /** ARGV: channel, message */
  rlRemove: `${PRELUDE}
if redis.call('EXISTS', LIST) == 0 then return 'E_NOT_FOUND' end
redis.call('DEL', LIST, GROUPS, MEMBERS, RK)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 'OK'`,

  /** ARGV: expectedGroupId, member, memberJson, wrapped, channel, message */
  rlPutMember: `${PRELUDE}
if redis.call('EXISTS', LIST) == 0 then return 'E_NOT_FOUND' end
if redis.call('HGET', LIST, 'groupId') ~= ARGV[1] then return 'E_RETRY' end
drop_member_keys(ARGV[2])
redis.call('HSET', MEMBERS, ARGV[2], ARGV[3])
redis.call('HSET', RK, ARGV[1] .. '|' .. ARGV[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 'OK'`,

  /** ARGV: member, channel, message */
  rlRemoveMember: `${PRELUDE}
if redis.call('EXISTS', LIST) == 0 then return 'E_NOT_FOUND' end
if redis.call('HEXISTS', MEMBERS, ARGV[1]) == 0 then return 'E_NOT_MEMBER' end
redis.call('HDEL', MEMBERS, ARGV[1])
drop_member_keys(ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 'OK'`,

  /**
   * ARGV: expectedGroupId, newGroupId, newGroupJson, channel, message, then
   * (member, memberJson, wrapped) triples: exactly the members the keys were computed for.
   */
  rlRotate: `${PRELUDE}
if redis.call('EXISTS', LIST) == 0 then return 'E_NOT_FOUND' end
if redis.call('HGET', LIST, 'groupId') ~= ARGV[1] then return 'E_ROTATED' end
if redis.call('HEXISTS', GROUPS, ARGV[2]) == 1 then return 'E_NOT_NEW' end
if redis.call('HLEN', MEMBERS) ~= (#ARGV - 5) / 3 then return 'E_RETRY' end
for i = 6, #ARGV, 3 do
  if redis.call('HGET', MEMBERS, ARGV[i]) ~= ARGV[i + 1] then return 'E_RETRY' end
end
for i = 6, #ARGV, 3 do
  redis.call('HSET', RK, ARGV[2] .. '|' .. ARGV[i], ARGV[i + 2])
end
redis.call('HSET', GROUPS, ARGV[2], ARGV[3])
redis.call('HSET', LIST, 'groupId', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 'OK'`,
} as const;

export type ListScriptName = keyof typeof LIST_SCRIPTS;
export const LIST_SCRIPT_KEYS = 4;

export function listKeys(prefix: string, address: string): string[] {
  const base = `${prefix}{l:${address}}:`;
  return ['list', 'groups', 'members', 'rk'].map((k) => base + k);
}

export const listsSetKey = (prefix: string): string => `${prefix}lists`;
export const memberOfKey = (prefix: string, member: string): string =>
  `${prefix}memberof:${member}`;
