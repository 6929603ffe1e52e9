/**
 * The Redis adapter's multi-record changes, as Lua scripts (atomic: no other command
 * runs in between). Redis does not roll a script back when a command inside it fails,
 * so each script checks every precondition, including the type of every key it will
 * write, before its first write; a failing check aborts with nothing written.
 *
 * Every script gets the same 9 keys, all of one user and so one cluster slot (see
 * keys.ts): user, enrol, devices, names, devids, seen, revoked, rk, profile.
 * Replies: 'OK' (enrol and set-owner: the user hash as a flat array), or an 'E_…' status
 * the adapter turns into a typed error.
 * Events are PUBLISHed from inside the script, so a notification goes out exactly
 * when the change happened.
 */

const PRELUDE = `
local USER, ENROL, DEVICES, NAMES, DEVIDS, SEEN, REVOKED, RK, PROFILE =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local EXPECTED = {'hash', 'hash', 'hash', 'hash', 'hash', 'hash', 'hash', 'hash', 'string'}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= EXPECTED[i] then
    return redis.error_reply('E_CORRUPT key ' .. KEYS[i] .. ' has type ' .. t)
  end
end
`;

export const SCRIPTS = {
  /** ARGV: address, displayName, created */
  rgAddUser: `${PRELUDE}
if redis.call('EXISTS', USER) == 1 then return 'E_DUP_USER' end
redis.call('HSET', USER, 'address', ARGV[1], 'displayName', ARGV[2], 'enrolment', 'pending', 'created', ARGV[3])
return 'OK'`,

  /** ARGV: channel, message */
  rgRemoveUser: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
redis.call('DEL', USER, ENROL, DEVICES, NAMES, DEVIDS, SEEN, REVOKED, RK, PROFILE)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 'OK'`,

  /** ARGV: tokenHash, expires */
  rgCreateToken: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
redis.call('DEL', ENROL)
redis.call('HSET', ENROL, 'hash', ARGV[1], 'expires', ARGV[2])
return 'OK'`,

  /**
   * ARGV: presentedHash, now, ownerCa, groupCert, groupId, ownerKeySpki (base64 / hex).
   * Comparing SHA-256 hashes with ~= leaks at most a prefix of the hash, which does not
   * help find a token.
   */
  rgEnrol: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
if redis.call('HGET', USER, 'enrolment') == 'enrolled' then return 'E_TOKEN_USED' end
local stored = redis.call('HGET', ENROL, 'hash')
if not stored or stored ~= ARGV[1] then return 'E_TOKEN_INVALID' end
if redis.call('HEXISTS', ENROL, 'used') == 1 then return 'E_TOKEN_USED' end
if tonumber(redis.call('HGET', ENROL, 'expires')) <= tonumber(ARGV[2]) then return 'E_TOKEN_EXPIRED' end
redis.call('HSET', ENROL, 'used', ARGV[2])
redis.call('HSET', USER, 'enrolment', 'enrolled', 'ownerCa', ARGV[3], 'groupCert', ARGV[4], 'groupId', ARGV[5],
  'ownerKeySpki', ARGV[6])
return redis.call('HGETALL', USER)`,

  /**
   * ARGV: now, channel, message, then the ids of the active devices the adapter read (and
   * encoded events for). 'E_CHANGED' when the active devices are not exactly those.
   */
  rgResetEnrolment: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
local expected = {}
for i = 4, #ARGV do expected[ARGV[i]] = true end
local active = 0
for _, id in ipairs(redis.call('HKEYS', DEVICES)) do
  if redis.call('HEXISTS', REVOKED, id) == 0 then
    if not expected[id] then return 'E_CHANGED' end
    active = active + 1
  end
end
if active ~= #ARGV - 3 then return 'E_CHANGED' end
for i = 4, #ARGV do redis.call('HSET', REVOKED, ARGV[i], ARGV[1]) end
redis.call('DEL', NAMES, RK, PROFILE, ENROL)
redis.call('HSET', USER, 'enrolment', 'pending')
redis.call('HDEL', USER, 'ownerCa', 'groupCert', 'groupId', 'ownerKeySpki', 'formerGroups')
if #ARGV > 3 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 'OK'`,

  /** ARGV: ownerCa, groupCert, groupId, ownerKeySpki */
  rgSetOwner: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
if redis.call('HGET', USER, 'enrolment') ~= 'enrolled' then return 'E_NOT_ENROLLED' end
redis.call('HSET', USER, 'ownerCa', ARGV[1], 'groupCert', ARGV[2], 'groupId', ARGV[3], 'ownerKeySpki', ARGV[4])
return redis.call('HGETALL', USER)`,

  /** ARGV: id, name, deviceId, deviceJson (an object; the script adds "seq"), channel, message, then (rkField, wrapped) pairs */
  rgAddDevice: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
if redis.call('HEXISTS', DEVIDS, ARGV[3]) == 1 then return 'E_DUP_DEVICE_ID' end
if redis.call('HEXISTS', NAMES, ARGV[2]) == 1 then return 'E_DUP_DEVICE_NAME' end
if redis.call('HEXISTS', DEVICES, ARGV[1]) == 1 then return 'E_DUP_DEVICE_ID' end
-- Insertion order for listings (several devices may share a millisecond): devids only
-- grows while the user exists, so its size is a per-user sequence number.
local seq = redis.call('HLEN', DEVIDS)
redis.call('HSET', DEVICES, ARGV[1], string.sub(ARGV[4], 1, -2) .. ',"seq":' .. seq .. '}')
redis.call('HSET', NAMES, ARGV[2], ARGV[1])
redis.call('HSET', DEVIDS, ARGV[3], ARGV[1])
for i = 7, #ARGV, 2 do
  redis.call('HSET', RK, ARGV[i], ARGV[i + 1])
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 'OK'`,

  /** ARGV: id, name, now, channel, message. Reply: 'OK' | 'ALREADY' | 'E_NOT_FOUND' */
  rgRevokeDevice: `${PRELUDE}
if redis.call('HEXISTS', DEVICES, ARGV[1]) == 0 then return 'E_NOT_FOUND' end
if redis.call('HEXISTS', REVOKED, ARGV[1]) == 1 then return 'ALREADY' end
redis.call('HSET', REVOKED, ARGV[1], ARGV[3])
if redis.call('HGET', NAMES, ARGV[2]) == ARGV[1] then redis.call('HDEL', NAMES, ARGV[2]) end
local suffix = '|' .. ARGV[1]
for _, field in ipairs(redis.call('HKEYS', RK)) do
  if string.sub(field, -#suffix) == suffix then redis.call('HDEL', RK, field) end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 'OK'`,

  /** ARGV: id, rkField, wrapped, channel, message */
  rgPutKey: `${PRELUDE}
if redis.call('HEXISTS', DEVICES, ARGV[1]) == 0 or redis.call('HEXISTS', REVOKED, ARGV[1]) == 1 then
  return 'E_NOT_FOUND'
end
redis.call('HSET', RK, ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 'OK'`,

  /**
   * A mailbox group rotation (group-rotation.ts). ARGV: fromGroupId, newGroupId,
   * newGroupCert (base64), formerGroups as read ('' for none), formerGroups to write,
   * profile, channel, message, the active device ids as read (JSON array), then
   * (device id, wrapped rk) pairs. 'E_CHANGED' when the group, the history or the
   * active devices are not what the adapter read, or an active device would be left
   * without a key for the new group.
   */
  rgRotateGroup: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 or redis.call('HGET', USER, 'enrolment') ~= 'enrolled' then
  return 'E_NOT_FOUND'
end
if redis.call('HGET', USER, 'groupId') ~= ARGV[1] then return 'E_CHANGED' end
if (redis.call('HGET', USER, 'formerGroups') or '') ~= ARGV[4] then return 'E_CHANGED' end
local expected = {}
local count = 0
for _, id in ipairs(cjson.decode(ARGV[9])) do expected[id] = true; count = count + 1 end
local active = 0
for _, id in ipairs(redis.call('HKEYS', DEVICES)) do
  if redis.call('HEXISTS', REVOKED, id) == 0 then
    if not expected[id] then return 'E_CHANGED' end
    active = active + 1
  end
end
if active ~= count then return 'E_CHANGED' end
local given = {}
for i = 10, #ARGV, 2 do given[ARGV[i]] = true end
for id, _ in pairs(expected) do
  if not given[id] and redis.call('HEXISTS', RK, ARGV[2] .. '|' .. id) == 0 then return 'E_CHANGED' end
end
for i = 10, #ARGV, 2 do redis.call('HSET', RK, ARGV[2] .. '|' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', USER, 'groupCert', ARGV[3], 'groupId', ARGV[2], 'formerGroups', ARGV[5])
redis.call('SET', PROFILE, ARGV[6])
if #ARGV > 9 then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return 'OK'`,

  /** ARGV: id, at */
  rgTouch: `${PRELUDE}
if redis.call('HEXISTS', DEVICES, ARGV[1]) == 1 then redis.call('HSET', SEEN, ARGV[1], ARGV[2]) end
return 'OK'`,

  /** ARGV: document */
  rgPutProfile: `${PRELUDE}
if redis.call('EXISTS', USER) == 0 then return 'E_NOT_FOUND' end
redis.call('SET', PROFILE, ARGV[1])
return 'OK'`,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export const SCRIPT_KEYS = 9;
